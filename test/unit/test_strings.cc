// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "core/output/json.h"
#include "core/target/python_binary.h"
#include "versions/walker/remote_object.h"

using pyflame::versions::pep393_to_utf8;

namespace {
template <typename T>
std::vector<std::byte> units(std::initializer_list<T> cps) {
  std::vector<std::byte> out(cps.size() * sizeof(T));
  size_t i = 0;
  for (T cp : cps) std::memcpy(out.data() + sizeof(T) * i++, &cp, sizeof(T));
  return out;
}
}  // namespace

TEST_CASE("PEP 393 strings of every kind decode to UTF-8") {
  CHECK(pep393_to_utf8(1, units<uint8_t>({'a', 'b', 'c'})) == "abc");
  CHECK(pep393_to_utf8(1, units<uint8_t>({'f', 0xfa, 'n', 0xf1})) == "f\xc3\xba" "n\xc3\xb1");  // "fún" "ñ"
  CHECK(pep393_to_utf8(2, units<uint16_t>({0x95a2, 0x6570})) == "\xe9\x96\xa2\xe6\x95\xb0");  // 関数
  CHECK(pep393_to_utf8(4, units<uint32_t>({0x1d523, 'x'})) == "\xf0\x9d\x94\xa3x");          // 𝔣x
  CHECK(pep393_to_utf8(4, units<uint32_t>({})) == "");
}

TEST_CASE("PEP 393: invalid data is refused or replaced, never passed on") {
  CHECK_FALSE(pep393_to_utf8(3, units<uint8_t>({'a', 'b', 'c'})));
  CHECK_FALSE(pep393_to_utf8(2, units<uint8_t>({'a', 'b', 'c'})));      // odd length
  CHECK_FALSE(pep393_to_utf8(4, units<uint32_t>({0x110000})));          // past Unicode
  CHECK(pep393_to_utf8(2, units<uint16_t>({0xdc80})) == "\xef\xbf\xbd");  // lone surrogate
}

TEST_CASE("JSON strings escape controls and repair invalid UTF-8") {
  std::string out;
  pyflame::core::append_json_string(out, "a\"b\\c\n\x01 \xe9\x96\xa2 \xff");
  CHECK(out == "\"a\\\"b\\\\c\\n\\u0001 \xe9\x96\xa2 \\ufffd\"");
}

TEST_CASE("Python versions from file names") {
  using pyflame::core::version_from_file_name;
  auto v = version_from_file_name("libpython3.11.so.1.0");
  REQUIRE(v);
  CHECK(v->major == 3);
  CHECK(v->minor == 11);
  CHECK(version_from_file_name("libpython3.6m.so.1.0")->minor == 6);
  CHECK(version_from_file_name("python2.7")->major == 2);
  CHECK(version_from_file_name("python3.15")->minor == 15);
  CHECK(version_from_file_name("python3.11")->build() == "3.11");
  CHECK_FALSE(version_from_file_name("libpython3.6m.so.1.0")->free_threaded);
  CHECK_FALSE(version_from_file_name("libpython3.7dm.so.1.0")->free_threaded);
  // The ABI tag of a free-threaded build (3.13+): its own binary.
  auto t = version_from_file_name("libpython3.13t.so.1.0");
  REQUIRE(t);
  CHECK(t->free_threaded);
  CHECK(t->build() == "3.13t");
  CHECK(version_from_file_name("python3.14td")->build() == "3.14t");
  CHECK_FALSE(version_from_file_name("python3"));
  CHECK_FALSE(version_from_file_name("libpypy3-c.so"));
  CHECK_FALSE(version_from_file_name("bash"));
}

TEST_CASE("Python versions from read-only data") {
  using pyflame::core::version_from_rodata;
  using namespace std::string_literals;
  CHECK(version_from_rodata("xx\0" "3.9.2+\0" "yy"s, 3, 9) == "3.9.2+");
  CHECK(version_from_rodata("\0" "3.11.7\0"s, 3, 11) == "3.11.7");
  // Tail-merged into a path by the linker.
  CHECK(version_from_rodata("/root/.pyenv/versions/3.9.18\0"s, 3, 9) == "3.9.18");
  // A NUL-preceded literal wins over a merged one.
  CHECK(version_from_rodata("/x/3.9.1\0" "3.9.18\0"s, 3, 9) == "3.9.18");
  CHECK_FALSE(version_from_rodata("13.9.18\0"s, 3, 9));
  CHECK_FALSE(version_from_rodata("3.9.\0"s, 3, 9));
  CHECK_FALSE(version_from_rodata("3.10.1\0"s, 3, 1));
}

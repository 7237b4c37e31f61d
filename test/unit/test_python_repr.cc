// SPDX-License-Identifier: Apache-2.0
// dump --locals' reprs against what CPython's repr() prints for the same
// values (checked with python3 -c 'print(repr(...))').
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "versions/walker/python_repr.h"

namespace repr = pyflame::versions::python_repr;

namespace {
std::string text(std::u32string_view s, int64_t length = -1) {
  std::vector<uint32_t> cps(s.begin(), s.end());
  return repr::text(cps, length < 0 ? static_cast<int64_t>(cps.size()) : length);
}
}  // namespace

TEST_CASE("floats print as Python's repr") {
  CHECK(repr::floating(0.1) == "0.1");
  CHECK(repr::floating(2.5) == "2.5");
  CHECK(repr::floating(100.0) == "100.0");
  CHECK(repr::floating(-0.0) == "-0.0");
  CHECK(repr::floating(1e16) == "1e+16");
  CHECK(repr::floating(1e15) == "1000000000000000.0");
  CHECK(repr::floating(1e-05) == "1e-05");
  CHECK(repr::floating(0.0001) == "0.0001");
  CHECK(repr::floating(1.5e300) == "1.5e+300");
  CHECK(repr::floating(123456789.123) == "123456789.123");
  CHECK(repr::floating(1.0 / 3) == "0.3333333333333333");
  CHECK(repr::floating(-2.5e-10) == "-2.5e-10");
}

TEST_CASE("str reprs pick Python's quotes and escapes") {
  CHECK(text(U"abc") == "'abc'");
  CHECK(text(U"it's") == "\"it's\"");
  CHECK(text(U"it's \"q\"") == "'it\\'s \"q\"'");
  CHECK(text(U"a\tb\nc\r\\") == "'a\\tb\\nc\\r\\\\'");
  CHECK(text(U"\x01\x7f") == "'\\x01\\x7f'");
  CHECK(text(U"caf\u00e9 \u65e5") == "'caf\xc3\xa9 \xe6\x97\xa5'");
  CHECK(text(U"\u00a0\u00ad\u2028\U000e0001") == "'\\xa0\\xad\\u2028\\U000e0001'");
  CHECK(text(U"xy", 100) == "'xy'... (100 chars)");
}

TEST_CASE("bytes reprs escape as Python does") {
  CHECK(repr::bytes(std::string("\x00" "ab\xff\"", 5), 5, true) == "b'\\x00ab\\xff\"'");
  CHECK(repr::bytes("it's", 4, false) == "\"it's\"");
  CHECK(repr::bytes("ab", 9, true) == "b'ab'... (9 bytes)");
}

TEST_CASE("ints of any size print in decimal, elided past 40 digits") {
  const std::vector<uint32_t> none;
  CHECK(repr::integer(none, 30, false) == "0");
  CHECK(repr::integer(std::vector<uint32_t>{7}, 30, true) == "-7");
  // 2**40 = 1024 * 2**30
  CHECK(repr::integer(std::vector<uint32_t>{0, 1024}, 30, false) == "1099511627776");
  CHECK(repr::integer(std::vector<uint32_t>{0, 0, 32}, 15, true) == "-34359738368");  // 2**35
  // 2**300: 91 digits
  std::vector<uint32_t> big(11, 0);
  big[10] = 1;
  CHECK(repr::integer(big, 30, false) ==
        "2037035976334486086268445688409378161051... (91 digits)");
}

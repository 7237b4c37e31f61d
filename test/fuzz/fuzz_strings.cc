// SPDX-License-Identifier: Apache-2.0
// Fuzz target: PEP 393 string decoding (versions/walker/remote_object.h
// pep393_to_utf8) for every kind byte, valid or not. Whatever it returns must
// be valid UTF-8: the writers pass names through to JSON, XML and protobuf.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "test/fuzz/fuzz_input.h"
#include "versions/walker/remote_object.h"

namespace {

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<uint8_t>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
    for (size_t k = 1; k < n; ++k) {
      auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pyflame::fuzz::FuzzInput in(data, size);
  int kind = in.take<int8_t>();
  auto rest = in.rest();
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(rest.data()), rest.size());
  auto text = pyflame::versions::pep393_to_utf8(kind, bytes);
  if (text && !valid_utf8(*text)) pyflame::fuzz::fail("pep393_to_utf8 returned invalid UTF-8", *text);
  if (text && (kind == 1 || kind == 2 || kind == 4) && text->size() > rest.size() / kind * 4)
    pyflame::fuzz::fail("more than 4 bytes of UTF-8 per code unit");
  // Every kind over the same bytes.
  for (int k : {1, 2, 4}) {
    auto other = pyflame::versions::pep393_to_utf8(k, bytes);
    if (other && !valid_utf8(*other)) pyflame::fuzz::fail("pep393_to_utf8 returned invalid UTF-8", *other);
  }
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
#include "versions/walker/python_repr.h"

#include "core/output/utf8.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace pyflame::versions::python_repr {
namespace {

// Not printable for str.isprintable() (Objects/unicodectype.c): the
// categories Cc, Cf, Cs, Co, Zl, Zp and Zs but for the space, as far as
// they can be told without the Unicode database.
bool unprintable(uint32_t c) {
  if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) return true;
  if (c == 0x061c || c == 0x180e || c == 0x1680) return true;
  if ((c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f))
    return true;
  if (c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb)) return true;
  if (c >= 0xd800 && c <= 0xf8ff) return true;  // surrogates, private use
  if ((c & 0xfffe) == 0xfffe) return true;       // noncharacters U+xFFFE, U+xFFFF
  if (c >= 0xe0000 && c <= 0xe007f) return true;  // tags
  return c >= 0xf0000;                            // private use planes
}

template <typename Unit>
char pick_quote(std::span<const Unit> units) {
  bool single = false, dbl = false;
  for (Unit u : units) {
    single |= u == '\'';
    dbl |= u == '"';
  }
  return single && !dbl ? '"' : '\'';
}

void append_cut(std::string& out, int64_t shown, int64_t length, const char* unit) {
  if (shown < length) out += fmt::format("... ({} {})", length, unit);
}

// The escapes str and bytes share (the quote, backslash, \t \n \r), as
// repr() writes them; false for any other character.
bool append_escape(std::string& out, uint32_t c, char quote) {
  switch (c) {
    case '\t': out += "\\t"; return true;
    case '\n': out += "\\n"; return true;
    case '\r': out += "\\r"; return true;
    case '\\': out += "\\\\"; return true;
    default:
      if (c != static_cast<unsigned char>(quote)) return false;
      out += '\\';
      out += quote;
      return true;
  }
}

}  // namespace

std::string text(std::span<const uint32_t> shown, int64_t length) {
  const char quote = pick_quote(shown);
  std::string out(1, quote);
  for (uint32_t c : shown) {
    if (append_escape(out, c, quote)) continue;
    if (c > 0x10ffff) {
      out += fmt::format("\\U{:08x}", c);  // not a code point: never from a valid str
    } else if (unprintable(c)) {
      if (c <= 0xff) out += fmt::format("\\x{:02x}", c);
      else if (c <= 0xffff) out += fmt::format("\\u{:04x}", c);
      else out += fmt::format("\\U{:08x}", c);
    } else {
      core::append_utf8(out, c);
    }
  }
  out += quote;
  append_cut(out, static_cast<int64_t>(shown.size()), length, "chars");
  return out;
}

std::string bytes(std::string_view shown, int64_t length, bool prefix_b) {
  const auto units = std::span(reinterpret_cast<const unsigned char*>(shown.data()), shown.size());
  const char quote = pick_quote(units);
  std::string out = prefix_b ? "b" : "";
  out += quote;
  for (unsigned char c : units) {
    if (append_escape(out, c, quote)) continue;
    if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  append_cut(out, static_cast<int64_t>(shown.size()), length, "bytes");
  return out;
}

std::string integer(std::span<const uint32_t> digits, int shift, bool negative) {
  // Base 10**9, least significant first, as CPython's long_to_decimal_string:
  // each digit of `shift` (<= 30) bits is shifted in from the most
  // significant end; every product fits in 64 bits.
  constexpr uint64_t kBase = 1000000000;
  std::vector<uint32_t> out;
  for (size_t i = digits.size(); i-- > 0;) {
    uint64_t carry = digits[i] & ((uint64_t{1} << shift) - 1);
    for (uint32_t& part : out) {
      const uint64_t z = (static_cast<uint64_t>(part) << shift) | carry;
      part = static_cast<uint32_t>(z % kBase);
      carry = z / kBase;
    }
    while (carry != 0) {
      out.push_back(static_cast<uint32_t>(carry % kBase));
      carry /= kBase;
    }
  }
  std::string decimal = out.empty() ? "0" : fmt::format("{}", out.back());
  for (size_t i = out.size() - 1; out.size() > 1 && i-- > 0;) decimal += fmt::format("{:09}", out[i]);
  std::string sign = negative && decimal != "0" ? "-" : "";
  if (decimal.size() <= kMaxDigits) return sign + decimal;
  return fmt::format("{}{}... ({} digits)", sign, decimal.substr(0, kMaxDigits), decimal.size());
}

std::string floating(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // The shortest round-trip digits, as Python's repr (mode 0 of dtoa).
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  if (ec != std::errc()) return "<unreadable>";
  std::string_view s(buf, static_cast<size_t>(end - buf));
  std::string sign;
  if (!s.empty() && s.front() == '-') {
    sign = "-";
    s.remove_prefix(1);
  }
  const size_t e = s.find('e');
  if (e == std::string_view::npos) return "<unreadable>";
  std::string digits;
  for (char c : s.substr(0, e))
    if (c != '.') digits += c;
  const int exponent = std::atoi(std::string(s.substr(e + 1)).c_str());
  const int decpt = exponent + 1;  // value = 0.DIGITS * 10**decpt
  // Python's 'r' format: exponent notation when decpt <= -4 or > 16.
  if (decpt <= -4 || decpt > 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    return fmt::format("{}{}e{}{:02}", sign, mantissa, exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  const auto n = static_cast<int>(digits.size());
  if (decpt <= 0) return sign + "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  if (decpt < n) return sign + digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
  return sign + digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
}

}  // namespace pyflame::versions::python_repr

// SPDX-License-Identifier: Apache-2.0
// Python's repr() of the values `dump --locals` shows, written from data
// read out of a target: pure functions over bytes and numbers, bounded
// (a huge int or a long string is elided, with its size said).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pyflame::versions::python_repr {

// Characters of a str, bytes of a bytes, shown before eliding the rest.
inline constexpr int64_t kMaxChars = 80;
// Decimal digits of an int shown before eliding the rest.
inline constexpr size_t kMaxDigits = 40;

// repr() of a str (3.x) whose first code points are `shown` of `length`:
// quotes as Python picks them, escapes for backslashes, quotes, control and
// non-printable characters (\xNN, \uNNNN, \UNNNNNNNN). Python decides what
// is printable from its Unicode database; this knows the categories that
// matter in practice (controls, separators other than space, format
// characters, surrogates, private use, noncharacters) and shows any other
// code point as it is. Cut short: `'abc'... (N chars)`.
std::string text(std::span<const uint32_t> shown, int64_t length);

// repr() of a bytes (3.x, `b` prefix) or a 2.7 str (no prefix) whose
// first bytes are `shown` of `length`.
std::string bytes(std::string_view shown, int64_t length, bool prefix_b);

// The decimal digits of an int held as `digits` of `shift` bits each,
// least significant first (PyLongObject's ob_digit), with a minus sign
// when `negative`. Past kMaxDigits: the first ones, then `... (N digits)`.
std::string integer(std::span<const uint32_t> digits, int shift, bool negative);

// repr() of a float: the shortest digits that read back the same, laid out
// as Python does (1e+16, 1e-05, 0.1, 1.0, inf, nan).
std::string floating(double value);

}  // namespace pyflame::versions::python_repr

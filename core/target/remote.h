// SPDX-License-Identifier: Apache-2.0
// An address in the target's address space. It is a distinct type so that a
// remote address can never be dereferenced locally by mistake, and all
// arithmetic on it is explicit.
#pragma once

#include <cstdint>
#include <functional>

namespace pyflame::core {

class RemoteAddr {
 public:
  constexpr RemoteAddr() = default;
  constexpr explicit RemoteAddr(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }
  constexpr bool is_null() const { return value_ == 0; }
  constexpr explicit operator bool() const { return value_ != 0; }
  constexpr RemoteAddr operator+(int64_t offset) const {
    return RemoteAddr(value_ + static_cast<uint64_t>(offset));
  }
  constexpr int64_t operator-(RemoteAddr other) const {
    return static_cast<int64_t>(value_ - other.value_);
  }
  constexpr auto operator<=>(const RemoteAddr&) const = default;

 private:
  uint64_t value_ = 0;
};

}  // namespace pyflame::core

template <>
struct std::hash<pyflame::core::RemoteAddr> {
  size_t operator()(pyflame::core::RemoteAddr a) const noexcept {
    return std::hash<uint64_t>()(a.value());
  }
};

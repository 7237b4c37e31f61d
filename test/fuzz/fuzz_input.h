// SPDX-License-Identifier: Apache-2.0
// Carves typed values out of a fuzz input, front to back; once the bytes run
// out every read gives zero or empty, so a target never reads past the input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pyflame::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  T take() {
    T value{};
    if (remaining() >= sizeof(T)) {
      std::memcpy(&value, data_ + pos_, sizeof(T));
      pos_ += sizeof(T);
    } else {
      pos_ = size_;
    }
    return value;
  }

  // A string of up to `max` bytes, its length taken from the input.
  std::string take_string(size_t max) {
    size_t n = take<uint8_t>();
    n = std::min({n, max, remaining()});
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

  std::string_view rest() {
    std::string_view out(reinterpret_cast<const char*>(data_ + pos_), remaining());
    pos_ = size_;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Stops the run loudly: libFuzzer reports abort() as a crash with the input.
[[noreturn]] void fail(const char* what, std::string_view detail = {});

// The input as a file, for decoders that open a path: written to one memfd
// (made on the first call), returned as /proc/self/fd/N.
std::string input_as_file(const uint8_t* data, size_t size);

}  // namespace pyflame::fuzz

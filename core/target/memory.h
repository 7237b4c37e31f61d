// SPDX-License-Identifier: Apache-2.0
// Read access to a target's address space: the seam between the walker and
// where the bytes come from. Process reads a live process; the tests and the
// walker's fuzz target read a fake image (test/walker/fake_image.h).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "core/target/remote.h"

namespace pyflame::core {

class Memory {
 public:
  virtual ~Memory() = default;

  // Reads exactly into.size() bytes; false if any byte could not be read
  // (unmapped, freed, the target gone). Never throws: a torn read of a
  // running process is normal.
  virtual bool read(RemoteAddr addr, std::span<std::byte> into) const = 0;

  // Several reads in as few system calls as possible. Sets, per request,
  // whether it was read whole.
  struct ReadRequest {
    RemoteAddr addr;
    std::span<std::byte> into;
  };
  virtual void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const = 0;

  // Reads as much of [addr, addr + into.size()) as is mapped from addr on;
  // returns how many bytes (0 if addr itself is unreadable).
  virtual size_t read_prefix(RemoteAddr addr, std::span<std::byte> into) const = 0;

  template <typename T>
  std::optional<T> read_value(RemoteAddr addr) const {
    T value;
    if (!read(addr, std::as_writable_bytes(std::span(&value, 1)))) return std::nullopt;
    return value;
  }
};

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
// Reading CPython objects out of a target, checked before they are trusted:
// type pointer, size bounds, string representation.
#pragma once

#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/target/memory.h"
#include "core/sampling/snapshot.h"
#include "versions/layout.h"
#include "versions/walker/member.h"

namespace pyflame::versions {

// The target's own type objects: a remote object is what it claims only if
// its ob_type is one of these addresses.
struct TypeAddrs {
  core::RemoteAddr code, frame, text, bytes;
};

// Raw data copied from the target (string characters, a bitfield's word):
// what is not a layout member. Members are read through member.h.
template <typename T>
T load(std::span<const std::byte> buf, int64_t offset) {
  T value{};
  if (offset >= 0 && static_cast<size_t>(offset) + sizeof(T) <= buf.size())
    std::memcpy(&value, buf.data() + offset, sizeof(T));
  return value;
}

inline core::Frame unknown_frame() { return {"<unknown>", std::nullopt, "<unknown>", std::nullopt}; }

// PEP 393 string data of `kind` (1: latin-1, 2: UCS-2, 4: UCS-4) as UTF-8;
// nullopt for an invalid kind or code point.
std::optional<std::string> pep393_to_utf8(int kind, std::span<const std::byte> data);

class RemoteObjects {
 public:
  // Names and file names are short; anything longer is not a real one.
  static constexpr int64_t kMaxStringChars = 4096;
  static constexpr int64_t kMaxTableBytes = 1 << 20;

  RemoteObjects(const pyflame_layout& layout, const core::Memory& target)
      : l_(layout), target_(target) {}

  void set_types(const TypeAddrs& types) { types_ = types; }
  const TypeAddrs& types() const { return types_; }

  std::optional<core::RemoteAddr> read_pointer(core::RemoteAddr addr) const;
  // co_name / co_filename / co_qualname: str (3.x) or PyString (2.7).
  std::optional<std::string> read_text(core::RemoteAddr object) const;
  // co_lnotab / co_linetable: bytes (3.x) or PyString (2.7); nullopt if
  // longer than `max_bytes`.
  std::optional<std::string> read_bytes(core::RemoteAddr object,
                                        int64_t max_bytes = kMaxTableBytes) const;
  // The length of such an object, read without its data.
  std::optional<int64_t> bytes_length(core::RemoteAddr object) const;

  // dump --locals: the first `max` units of a str (code points; 3.x) or of
  // a bytes or 2.7 str (bytes), and the object's whole length. nullopt if
  // it fails a check or a read (a str not compact, too).
  struct TextPrefix {
    std::vector<uint32_t> code_points;
    int64_t length = 0;
  };
  std::optional<TextPrefix> read_text_prefix(core::RemoteAddr object, int64_t max) const;
  struct BytesPrefix {
    std::string data;
    int64_t length = 0;
  };
  std::optional<BytesPrefix> read_bytes_prefix(core::RemoteAddr object, int64_t max) const;

 private:
  const pyflame_layout& l_;
  const core::Memory& target_;
  TypeAddrs types_;
};

}  // namespace pyflame::versions

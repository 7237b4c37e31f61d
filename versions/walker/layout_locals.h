// SPDX-License-Identifier: Apache-2.0
// dump --locals: a frame's variables (names from its code object, values
// from its fast-locals slots) read through the layout table, each value
// type-checked against the target's own types and formatted as Python's
// repr would, bounded. Reads go straight to a core::Memory (a live
// process, a core file, a fake image), never through the sampling cache.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/sampling/snapshot.h"
#include "core/target/memory.h"
#include "versions/layout.h"
#include "versions/walker/layout_module.h"
#include "versions/walker/remote_object.h"

namespace pyflame::versions {

class LocalsReader {
 public:
  // Variables read of one frame, at most; a frame with more is truncated.
  static constexpr int64_t kMaxLocals = 1024;
  // Digits of an int read, at most (30 bits each: about 9,000 decimal
  // digits); a larger one is shown as <int at 0x...>.
  static constexpr int64_t kMaxIntDigits = 1000;
  // A type's name, at most (tp_name is a C string anywhere in memory).
  static constexpr size_t kMaxTypeName = 64;

  LocalsReader(const pyflame_layout& layout, const core::Memory& target,
               const RemoteObjects& objects, const ValueSymbols& values)
      : l_(layout), target_(target), objects_(objects), values_(values) {}

  // The variables of the frame at `frame` (a frame object up to 3.10, an
  // interpreter frame from 3.11) that runs the code object at `code`.
  core::FrameLocals read_frame(core::RemoteAddr frame, core::RemoteAddr code);

  // One object as shown: its type's name (nullopt: unreadable) and repr.
  struct Shown {
    std::optional<std::string> type;
    std::string repr;
  };
  Shown describe(core::RemoteAddr object);

  // Forget the type names read: types made by the program can be freed.
  void clear_cache() { type_names_.clear(); }

 private:
  struct Names {
    std::vector<std::string> names;
    std::vector<core::LocalKind> kinds;
    std::vector<bool> hidden;  // not shown (3.12+: an inlined comprehension's)
    bool truncated = false;
  };
  std::optional<Names> read_names(core::RemoteAddr code);
  // The items of a tuple (names), at most `max`; nullopt if it is not one.
  std::optional<std::vector<core::RemoteAddr>> tuple_items(core::RemoteAddr tuple, int64_t max,
                                                           int64_t* length);
  std::optional<std::string> type_name(core::RemoteAddr type);
  std::string repr_int(core::RemoteAddr object, std::span<const std::byte> head);

  const pyflame_layout& l_;
  const core::Memory& target_;
  const RemoteObjects& objects_;
  const ValueSymbols& values_;
  std::unordered_map<core::RemoteAddr, std::optional<std::string>> type_names_;
};

}  // namespace pyflame::versions

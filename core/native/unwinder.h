// SPDX-License-Identifier: Apache-2.0
// Native stacks of a stopped thread: elfutils' libdwfl unwinds from the
// thread's registers through the CFI (.eh_frame, .debug_frame) of the files
// the target maps, reading stack memory through core::Memory, so that a
// core file can later be unwound by the same code. Each code address is
// symbolized once (.symtab, .dynsym, MiniDebugInfo, DWARF lines where
// installed) and cached; the unwind tables are parsed once per file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/native/frame_rules.h"
#include "core/native/registers.h"
#include "core/target/target_image.h"

namespace pyflame::core {

// One code address, symbolized. Valid until Unwinder::begin_sample() drops
// the cache (bounded), so for the sample that produced it.
struct NativeLocation {
  std::string function;  // demangled; "0x…" when no symbol covers it
  std::string library;   // the file's maps path, "[vdso]", or "?" if unmapped
  std::string filename;  // DWARF's source file; empty without debug info
  int line = 0;          // DWARF's line; 0 without
  uint64_t address = 0;  // the frame's address in the target
  uint64_t key = 0;      // same key, same strings (for the profile's interning)
  NativeRole role = NativeRole::kShown;
  // DWARF's inlined calls at one address are frames of their own: an
  // inlined function's location is `inlined`, and `outer` is the function
  // (inlined or not) it was inlined into, at the same address.
  bool inlined = false;
  const NativeLocation* outer = nullptr;
  bool in_interpreter = false;  // in libpython, or the executable of a static build
  bool unnamed = false;         // no symbol covers it
};

struct NativeStack {
  std::vector<const NativeLocation*> frames;  // innermost first
  std::vector<uint64_t> stack_pointers;       // each frame's, where known (else 0)
  // The unwind reached the thread's first frame. When it did not (no CFI,
  // a corrupt stack, a bound), `frames` holds what was unwound.
  bool complete = false;
};

class Unwinder {
 public:
  // Reports every file the process maps to libdwfl (through
  // TargetImage::open_mapped_file, so a container's files are its own, and
  // a core's are the checked ones). Throws Error when libdwfl cannot be set
  // up at all.
  Unwinder(const TargetImage& process, NativeFrameRules rules);
  ~Unwinder();
  Unwinder(const Unwinder&) = delete;
  Unwinder& operator=(const Unwinder&) = delete;

  // Before each sample: the locations handed out so far may be dropped.
  void begin_sample();
  // Unwinds `tid`, which must stay stopped meanwhile, from `registers`.
  void unwind(pid_t tid, const Registers& registers, NativeStack& out);

  struct Internals;  // libdwfl's callbacks reach the unwinder through it

 private:
  const NativeLocation* locate(uint64_t address, bool activation);
  NativeLocation* store(NativeLocation location);
  void report_modules();
  bool read_word(uint64_t address, uint64_t& word);

  const TargetImage& process_;
  NativeFrameRules rules_;
  std::unique_ptr<Internals> internals_;
  // Symbolized addresses (the lookup address: a return address less one).
  std::unordered_map<uint64_t, NativeLocation*> by_address_;
  std::deque<NativeLocation> locations_;
  std::unordered_map<std::string, uint64_t> keys_;  // identity -> key
  uint64_t next_key_ = 1;
  // Stack memory of the thread being unwound, read in chunks on demand.
  struct Chunk {
    uint64_t base = 0;
    std::vector<std::byte> bytes;  // as much as was readable from base
  };
  std::vector<Chunk> chunks_;
  size_t chunk_bytes_read_ = 0;
  const Registers* registers_ = nullptr;
};

}  // namespace pyflame::core

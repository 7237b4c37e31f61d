// SPDX-License-Identifier: Apache-2.0
// An aggregated profile: what `record` collects and every writer consumes.
// Frames and stacks are interned as samples arrive, so memory grows with the
// number of distinct stacks, not with the number of samples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <map>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

// One distinct code location. `line` is 0 when it could not be read.
struct ProfileFrame {
  std::string function;  // co_qualname where the version has it, else co_name
  std::string filename;
  int line = 0;
  // --native: a C frame's file (its maps path); empty for a Python frame.
  // `filename` and `line` are then DWARF's, when it had them.
  std::string library;
  bool is_native = false;
  bool native() const { return is_native; }
  bool operator==(const ProfileFrame&) const = default;
};

// --subprocesses: one process of the tree, the root of its threads' stacks.
struct ProfileProcess {
  int pid = 0;
  std::string command;         // its command line, bounded (process_command_line)
  std::string python_version;  // empty until read (or never: not Python)
  bool operator==(const ProfileProcess&) const = default;
};

struct ProfileThread {
  uint32_t process = 0;              // index into Profile::processes (0 without them)
  uint64_t thread_id = 0;            // Python's ident
  std::optional<int64_t> native_id;  // Linux TID
  std::string name;                  // the thread's name (comm), may be empty
  bool operator==(const ProfileThread&) const = default;
};

// One distinct (thread, stack) pair and how many samples saw it.
struct ProfileStack {
  uint32_t thread = 0;           // index into Profile::threads
  std::vector<uint32_t> frames;  // indices into Profile::frames, root first
  uint64_t count = 0;
};

// A sample in time order, kept only when a writer needs a timeline
// (--flamechart; speedscope orders its samples by it when present).
struct TimedSample {
  double seconds = 0;  // since the start of recording
  uint32_t stack = 0;  // index into Profile::stacks
};

struct Profile {
  int pid = 0;
  std::string python_version;
  std::string target;               // the command line, or "process PID"
  double interval_seconds = 0.01;   // the requested sampling interval
  double duration_seconds = 0;      // wall time actually recorded
  bool thread_roots = false;        // --threads: each stack starts with its thread
  // --subprocesses: each stack starts with its process (before its thread).
  bool process_roots = false;
  std::vector<ProfileProcess> processes;
  std::vector<ProfileFrame> frames;
  std::vector<ProfileThread> threads;
  std::vector<ProfileStack> stacks;
  std::vector<TimedSample> timeline;

  uint64_t total_samples() const;
};

// "thread 'MainThread' (tid 1234)": the root frame under --threads.
std::string thread_label(const ProfileThread& thread);
// "process 1234: python3 app.py": the root frame under --subprocesses.
std::string process_label(const ProfileProcess& process);
// The labels a stack of `thread` starts with, outermost first: its process
// (--subprocesses), then its thread (--threads).
std::vector<std::string> root_labels(const Profile& profile, const ProfileThread& thread);
// "function (file:line)", or "function [libfoo.so]" for a native frame: one
// frame of the collapsed and flamegraph formats.
std::string frame_label(const ProfileFrame& frame);

// Interns snapshots into a Profile, one call per sampled thread stack.
class ProfileBuilder {
 public:
  explicit ProfileBuilder(Profile& profile) : profile_(profile) {}
  // `frames` innermost first, as the walker produces them; `process`: the
  // index of its process in profile.processes (code keys and thread idents
  // are only unique within one). Returns the index of the stack in
  // profile.stacks.
  uint32_t add(const ThreadSample& thread, uint64_t count = 1, uint32_t process = 0);

 private:
  uint32_t intern_frame(const Frame& frame, uint32_t process);
  uint32_t intern_thread(const ThreadSample& thread, uint32_t process);

  struct KeyHash {
    size_t operator()(const std::vector<uint32_t>& key) const noexcept;
  };
  struct FrameHash {
    size_t operator()(const ProfileFrame& f) const noexcept;
  };
  Profile& profile_;
  std::unordered_map<ProfileFrame, uint32_t, FrameHash> frame_ids_;
  struct CodeLine {
    uint64_t code_key = 0;
    int line = 0;
    uint32_t process = 0;
    bool operator==(const CodeLine&) const = default;
  };
  struct CodeLineHash {
    size_t operator()(const CodeLine& k) const noexcept {
      return std::hash<uint64_t>()(k.code_key * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(k.line) ^
                                   (static_cast<uint64_t>(k.process) << 40));
    }
  };
  // The fast path: (code_key, line, process) -> frame index, no strings touched.
  std::unordered_map<CodeLine, uint32_t, CodeLineHash> code_line_ids_;
  // Keyed by process, Python ident and TID: a new thread may reuse an old
  // one's ident.
  std::map<std::tuple<uint32_t, uint64_t, int64_t>, uint32_t> thread_ids_;
  // Key: thread index followed by frame indices, root first.
  std::unordered_map<std::vector<uint32_t>, uint32_t, KeyHash> stack_ids_;
  std::vector<uint32_t> key_;  // reused: no allocation per sample once warm
  // Per thread index: the last stack added, as (code_key, line) innermost
  // first, and its index. A thread that sits in the same stack sample after
  // sample (the common case) is counted without hashing anything.
  struct LastStack {
    std::vector<std::pair<uint64_t, int>> frames;
    uint32_t stack = 0;
    bool valid = false;
  };
  std::vector<LastStack> last_;
};

}  // namespace pyflame::core

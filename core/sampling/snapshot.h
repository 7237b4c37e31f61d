// SPDX-License-Identifier: Apache-2.0
// One sample of every Python thread of a target: what the version module
// produces and the writers consume.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyflame::core {

enum class FrameKind : uint8_t { kPython, kNative };

// Native frames' code keys have this bit set: they never meet a Python one's.
constexpr uint64_t kNativeKeyBit = uint64_t{1} << 63;

// A library's file name, as C frames are labelled: "libc.so.6" for
// "/usr/lib/x86_64-linux-gnu/libc.so.6".
inline std::string_view library_file_name(std::string_view library) {
  const size_t slash = library.rfind('/');
  return slash == std::string_view::npos ? library : library.substr(slash + 1);
}

// dump --locals: one variable of a Python frame, as the walker read it.
// Values are formatted in versions/ (core knows no Python object); here
// they are only text.
enum class LocalKind : uint8_t { kArg, kLocal, kCell, kFree };

inline std::string_view local_kind_name(LocalKind kind) {
  switch (kind) {
    case LocalKind::kArg: return "arg";
    case LocalKind::kLocal: return "local";
    case LocalKind::kCell: return "cell";
    case LocalKind::kFree: return "free";
  }
  return "local";
}

struct Local {
  std::string name;
  LocalKind kind = LocalKind::kLocal;
  std::optional<std::string> type;  // the object's tp_name; nullopt: unreadable
  std::string repr;                 // bounded and escaped; "<unreadable>" when a check failed
};

struct FrameLocals {
  std::vector<Local> values;  // in the code object's order; unbound ones left out
  bool truncated = false;     // more than the walker reads for one frame
  bool unreadable = false;    // the frame or its code could not be read again
};

// The strings are views into the interpreter's cache of code objects (or
// string literals): valid until the next Interpreter::sample() call or the
// interpreter's destruction. Copy them to keep them longer. They are views so
// that a sample of a deep stack copies no strings.
struct Frame {
  std::string_view function;                // co_name, or "<unknown>" if unverifiable
  std::optional<std::string_view> qualname; // co_qualname where the version has it
  std::string_view filename;
  std::optional<int> line;
  // Nonzero: frames with the same key and line have the same strings, for
  // the life of the interpreter (a key is never reused). Lets the profile
  // intern a frame without looking at its strings.
  uint64_t code_key = 0;
  // --native: a C frame, with the file that holds it (its maps path) and
  // its address; `filename` and `line` are DWARF's, when it has them.
  FrameKind kind = FrameKind::kPython;
  std::string_view library = {};
  uint64_t address = 0;
  bool inlined = false;  // a C function inlined into the frame outside it (DWARF)
  // dump --locals (Interpreter::set_locals): the frame's variables, owned
  // by the interpreter and valid as long as the strings above; null when
  // not asked for, or for a frame whose code is unknown.
  const FrameLocals* locals = nullptr;

  bool operator==(const Frame&) const = default;
};

struct ThreadSample {
  uint64_t thread_id = 0;               // Python's ident (pthread_t)
  std::optional<int64_t> native_id;     // Linux TID
  std::optional<std::string> name;      // /proc/PID/task/TID/comm
  std::optional<bool> holds_gil;
  std::optional<bool> idle;
  std::vector<Frame> frames;            // innermost first
  // How many of `frames` each call of the eval loop (one C call of
  // _PyEval_EvalFrameDefault or PyEval_EvalFrameEx) runs, innermost call
  // first: for merging native frames (core/native/merge.h).
  std::vector<uint32_t> eval_calls;
  // Per eval-loop call, where its entry frame (3.12+: a shim frame in the
  // eval loop's C stack frame) is; 0 where the version has none. Tells the
  // eval loop's native frames without symbols (a stripped interpreter).
  std::vector<uint64_t> eval_call_anchors;
  bool truncated = false;               // the walk hit a bound or a bad frame
  // Its stack moved under every read of this sample: frames are not one
  // moment's and must not be shown (counted instead).
  bool torn = false;

  // Back to a default sample but for the frames, which the walker may keep
  // in part (see Interpreter::sample).
  void reset_except_frames() {
    std::vector<Frame> keep = std::move(frames);
    std::vector<uint32_t> calls = std::move(eval_calls);
    std::vector<uint64_t> anchors = std::move(eval_call_anchors);
    *this = ThreadSample();
    frames = std::move(keep);
    eval_calls = std::move(calls);
    eval_calls.clear();
    eval_call_anchors = std::move(anchors);
    eval_call_anchors.clear();
  }
};

// Interpreter::sample() replaces `threads`, reusing its storage.
struct Snapshot {
  int pid = 0;
  std::string python_version;
  std::vector<ThreadSample> threads;
  uint32_t retries = 0;  // walks of this sample beyond the first
  uint32_t torn = 0;     // threads marked torn
};

}  // namespace pyflame::core

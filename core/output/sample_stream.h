// SPDX-License-Identifier: Apache-2.0
// The sample stream: thread samples as bytes, the same for every Python
// version. `record --subprocesses` runs the sibling binary of a child's
// Python version in a hidden mode; it samples that child and writes this
// stream to a pipe, and the parent decodes it into its own profile as if it
// had sampled the child itself. Only encoding and decoding live here (no
// pipes, no processes); docs/how-it-works.md, "The sample stream
// (--subprocesses)", describes the format.
//
// Strings, frames and threads are defined once and then referred to by id,
// so a sample costs about a byte or two per frame. The writer is on the
// sibling's sampling path: a frame with a code key is found by a hash of
// numbers, never of strings. The reader trusts nothing: every id, length,
// count and table is checked and bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

// How the sampled target's recording ended.
enum class StreamEnding : uint8_t {
  kStopped = 0,  // the recording stopped (duration, signal, parent's request); the target lives
  kExited = 1,   // the target exited
  kExeced = 2,   // the target exec'd: what runs now is another program, maybe another Python
};

// What the sibling counted, sent at the end: record's Counters
// (core/cli/record_stats.h), field for field. Declared here so that
// core/output does not depend on the command-line code; the caller copies.
struct StreamCounters {
  uint64_t ticks = 0;
  uint64_t errors = 0;
  uint64_t late = 0;
  uint64_t thread_samples = 0;
  uint64_t torn = 0;
  uint64_t retries = 0;
  bool operator==(const StreamCounters&) const = default;
};

// Bounds of the format: the reader rejects a stream beyond any of them and
// the writer never produces one (it cuts strings and stacks, and refuses a
// sample that would overflow a table).
struct SampleStreamLimits {
  static constexpr uint32_t kFormatVersion = 1;
  static constexpr size_t kMaxString = 1 << 16;        // bytes of one string (cut at UTF-8)
  static constexpr size_t kMaxVersionString = 256;     // the hello's python_version
  static constexpr size_t kMaxStrings = 1 << 21;       // distinct strings
  static constexpr size_t kMaxStringBytes = size_t{1} << 27;  // all of them together
  static constexpr size_t kMaxFrames = 1 << 21;        // distinct frames
  static constexpr size_t kMaxThreads = 1 << 20;       // distinct (thread, name) pairs
  static constexpr size_t kMaxSampleFrames = 1 << 15;  // in one sample (more: cut, truncated)
  static constexpr size_t kMaxRecord = 1 << 18;        // bytes of one record's payload
};

// The stream's first bytes: a magic and the format version (a varint).
inline constexpr std::string_view kSampleStreamMagic{"PYFLSTRM", 8};

class SampleStreamWriter {
 public:
  // Starts the buffer with the header.
  SampleStreamWriter();

  // First, once: the target.
  void hello(int pid, std::string_view python_version);
  // One thread's sample, `elapsed` seconds after the sibling started (a
  // negative or non-finite value is sent as 0). Sends the fields a profile
  // uses; not locals, eval_calls or their anchors (the sibling merges native
  // frames before this). The caller leaves out torn samples. False when the
  // sample would overflow a table of the format (SampleStreamLimits): it
  // was not sent, count it as an error.
  bool sample(const ThreadSample& thread, double elapsed);
  // Last, once: the counters and why the recording ended.
  void finish(const StreamCounters& counters, StreamEnding ending);

  // The bytes written since the last take(); the buffer is left empty.
  std::string take();
  size_t buffered() const { return out_.size(); }

 private:
  struct KeyedFrame {
    uint64_t code_key;
    uint64_t address;
    int line;
    uint8_t flags;  // has line, native, inlined
    bool operator==(const KeyedFrame&) const = default;
  };
  struct KeyedFrameHash {
    size_t operator()(const KeyedFrame& k) const noexcept;
  };
  // A frame without a code key, by content: its strings' ids.
  struct ContentFrame {
    uint32_t function, qualname, filename, library;  // qualname: kNone when absent
    int line;
    uint8_t flags;
    uint64_t address;
    bool operator==(const ContentFrame&) const = default;
  };
  struct ContentFrameHash {
    size_t operator()(const ContentFrame& k) const noexcept;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>()(s);
    }
  };
  struct ThreadIdentity {
    uint64_t thread_id;
    std::optional<int64_t> native_id;
    bool operator==(const ThreadIdentity&) const = default;
  };
  struct ThreadIdentityHash {
    size_t operator()(const ThreadIdentity& t) const noexcept;
  };
  struct ThreadRef {
    uint32_t id;
    std::optional<std::string> name;
  };

  std::optional<uint32_t> intern_string(std::string_view s);
  std::optional<uint32_t> intern_frame(const Frame& frame);
  std::optional<uint32_t> define_frame(const Frame& frame);
  std::optional<uint32_t> intern_thread(const ThreadSample& thread);
  void begin_record(uint8_t type);
  void end_record();

  std::string out_;
  std::string record_;  // the record being built, before its length is known
  bool said_hello_ = false;
  bool finished_ = false;
  std::optional<double> elapsed_;  // the last time record sent
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> strings_;
  size_t string_bytes_ = 0;
  std::unordered_map<KeyedFrame, uint32_t, KeyedFrameHash> keyed_frames_;
  std::unordered_map<ContentFrame, uint32_t, ContentFrameHash> content_frames_;
  uint32_t frame_count_ = 0;
  // The thread's latest (thread, name) id; every pair ever sent, by name.
  std::unordered_map<ThreadIdentity, ThreadRef, ThreadIdentityHash> thread_latest_;
  std::map<std::tuple<uint64_t, std::optional<int64_t>, std::optional<std::string>>, uint32_t>
      thread_ids_;
  std::vector<uint32_t> frame_ids_;  // reused per sample
};

class SampleStreamReader {
 public:
  struct Sample {
    ThreadSample thread;
    double elapsed = 0;
  };

  // Decoded frames get code keys of their own, unique within this stream:
  // bit 62 set (never a walker's or an unwinder's key), `stream_index`
  // (30 bits) above bit 32, the frame's id + 1 below, and bit 63
  // (kNativeKeyBit) for a native frame. Give each stream fed into one
  // profile its own index.
  explicit SampleStreamReader(uint32_t stream_index = 0);

  // Appends bytes, as they come from the pipe, and decodes every whole
  // record. Throws Error(kFailure) once the bytes prove the stream bad
  // (and on every call after that); an incomplete record waits for more.
  void feed(std::string_view bytes);

  // The samples decoded since the last clear_samples(), oldest first. Their
  // frames' strings are views into this reader's tables, valid for its life.
  std::span<const Sample> samples() const { return {samples_.data(), pending_}; }
  // Forgets them; the next feed() reuses their storage.
  void clear_samples() { pending_ = 0; }

  std::optional<int> pid() const { return pid_; }  // from the hello record
  const std::string& python_version() const { return python_version_; }
  const std::optional<StreamCounters>& counters() const { return counters_; }
  std::optional<StreamEnding> ending() const { return ending_; }
  bool ended() const { return ended_; }  // the end record was read

 private:
  struct StoredFrame {
    uint32_t function, qualname, filename, library;  // qualname: kNone when absent
    int line;
    uint8_t flags;
    uint64_t address;
  };
  struct StoredThread {
    uint64_t thread_id;
    std::optional<int64_t> native_id;
    std::optional<uint32_t> name;
  };
  class Payload;

  size_t parse_header(std::string_view data);
  void parse_record(uint8_t type, std::string_view payload);
  void read_sample(Payload& in);
  [[noreturn]] void fail(const std::string& what) const;

  uint64_t key_base_;
  std::string buffer_;  // bytes of a record not yet whole
  uint64_t offset_ = 0; // stream offset of buffer_[0], for messages
  bool header_done_ = false;
  bool failed_ = false;
  std::optional<int> pid_;
  std::string python_version_;
  std::optional<StreamCounters> counters_;
  std::optional<StreamEnding> ending_;
  bool ended_ = false;
  double elapsed_ = 0;
  std::deque<std::string> strings_;  // a deque: views into its strings stay valid
  size_t string_bytes_ = 0;
  std::vector<StoredFrame> frames_;
  std::vector<StoredThread> threads_;
  std::vector<Sample> samples_;
  size_t pending_ = 0;
};

}  // namespace pyflame::core

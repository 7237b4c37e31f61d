// SPDX-License-Identifier: Apache-2.0
#include "core/output/sample_stream.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/errors.h"

namespace pyflame::core {
namespace {

using Limits = SampleStreamLimits;

// Record types: a byte, then the payload's length (a varint), then the
// payload. The reader knows each one; any other byte is an error.
enum Record : uint8_t {
  kHello = 1,     // pid, python_version
  kString = 2,    // defines the next string id: the payload is its bytes
  kFrame = 3,     // defines the next frame id
  kThread = 4,    // defines the next thread id
  kTime = 5,      // elapsed seconds (f64) of the samples that follow
  kSample = 6,    // thread id, flags, frame ids innermost first
  kCounters = 7,  // the sibling's counters and how it ended
  kEnd = 8,
};

// Frame flags.
constexpr uint8_t kHasQualname = 1;
constexpr uint8_t kHasLine = 2;
constexpr uint8_t kNative = 4;
constexpr uint8_t kInlined = 8;
constexpr uint8_t kFrameFlags = kHasQualname | kHasLine | kNative | kInlined;
// Thread flags.
constexpr uint8_t kHasNativeId = 1;
constexpr uint8_t kHasName = 2;
// Sample flags: a "known" bit per optional bool, then its value.
constexpr uint8_t kGilKnown = 1;
constexpr uint8_t kHoldsGil = 2;
constexpr uint8_t kIdleKnown = 4;
constexpr uint8_t kIdle = 8;
constexpr uint8_t kTruncated = 16;
constexpr uint8_t kSampleFlags = kGilKnown | kHoldsGil | kIdleKnown | kIdle | kTruncated;

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();  // no qualname
constexpr uint64_t kStreamKeyBit = uint64_t{1} << 62;
constexpr size_t kMaxVarint = 10;

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_f64(std::string& out, double d) {
  const auto bits = std::bit_cast<uint64_t>(d);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
}

// A varint at data[pos]: its length in bytes, 0 if `data` ends inside it.
// Throws (via fail) on more than ten bytes or a needless trailing zero.
template <typename Fail>
size_t get_varint(std::string_view data, size_t pos, uint64_t& value, Fail&& fail) {
  value = 0;
  for (size_t i = 0; i < kMaxVarint; ++i) {
    if (pos + i >= data.size()) return 0;
    const auto b = static_cast<uint8_t>(data[pos + i]);
    if (i == kMaxVarint - 1 && b > 1) fail("a varint beyond 64 bits");
    value |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      if (b == 0 && i > 0) fail("a varint with a needless trailing zero byte");
      return i + 1;
    }
  }
  fail("a varint beyond 64 bits");
  return 0;
}

// The longest prefix of `s` of at most `max` bytes that does not cut a
// UTF-8 sequence.
std::string_view cut_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

// ------------------------------------------------------------------ writer

size_t SampleStreamWriter::KeyedFrameHash::operator()(const KeyedFrame& k) const noexcept {
  return mix(k.code_key * 0x9e3779b97f4a7c15ull ^ mix(k.address) ^
             (static_cast<uint64_t>(static_cast<uint32_t>(k.line)) << 8 | k.flags));
}

size_t SampleStreamWriter::ContentFrameHash::operator()(const ContentFrame& k) const noexcept {
  uint64_t h = mix(k.function ^ uint64_t{k.qualname} << 32);
  h = mix(h ^ k.filename ^ uint64_t{k.library} << 32);
  h = mix(h ^ k.address);
  return mix(h ^ static_cast<uint32_t>(k.line) ^ uint64_t{k.flags} << 32);
}

size_t SampleStreamWriter::ThreadIdentityHash::operator()(const ThreadIdentity& t) const noexcept {
  return mix(t.thread_id ^ mix(t.native_id ? static_cast<uint64_t>(*t.native_id) : ~uint64_t{0}));
}

SampleStreamWriter::SampleStreamWriter() {
  out_.append(kSampleStreamMagic);
  put_varint(out_, Limits::kFormatVersion);
}

void SampleStreamWriter::begin_record(uint8_t type) {
  record_.clear();
  record_.push_back(static_cast<char>(type));
}

void SampleStreamWriter::end_record() {
  // record_ holds the type and the payload: the length goes between them.
  out_.push_back(record_[0]);
  put_varint(out_, record_.size() - 1);
  out_.append(record_, 1);
}

void SampleStreamWriter::hello(int pid, std::string_view python_version) {
  if (said_hello_) throw std::logic_error("SampleStreamWriter::hello called twice");
  said_hello_ = true;
  const std::string_view version = cut_utf8(python_version, Limits::kMaxVersionString);
  begin_record(kHello);
  put_varint(record_, static_cast<uint64_t>(std::max(pid, 0)));
  put_varint(record_, version.size());
  record_.append(version);
  end_record();
}

std::optional<uint32_t> SampleStreamWriter::intern_string(std::string_view s) {
  s = cut_utf8(s, Limits::kMaxString);
  if (auto it = strings_.find(s); it != strings_.end()) return it->second;
  if (strings_.size() >= Limits::kMaxStrings || string_bytes_ + s.size() > Limits::kMaxStringBytes)
    return std::nullopt;
  const auto id = static_cast<uint32_t>(strings_.size());
  strings_.emplace(std::string(s), id);
  string_bytes_ += s.size();
  // Its own record: a frame's record, being built, refers to it.
  out_.push_back(static_cast<char>(kString));
  put_varint(out_, s.size());
  out_.append(s);
  return id;
}

std::optional<uint32_t> SampleStreamWriter::define_frame(const Frame& f) {
  if (frame_count_ >= Limits::kMaxFrames) return std::nullopt;
  const auto function = intern_string(f.function);
  const auto qualname = f.qualname ? intern_string(*f.qualname) : std::optional<uint32_t>(kNone);
  const auto filename = intern_string(f.filename);
  const auto library = intern_string(f.library);
  if (!function || !qualname || !filename || !library) return std::nullopt;
  begin_record(kFrame);
  const uint8_t flags = (f.qualname ? kHasQualname : 0) | (f.line ? kHasLine : 0) |
                        (f.kind == FrameKind::kNative ? kNative : 0) | (f.inlined ? kInlined : 0);
  record_.push_back(static_cast<char>(flags));
  put_varint(record_, *function);
  if (f.qualname) put_varint(record_, *qualname);
  put_varint(record_, *filename);
  if (f.line) put_varint(record_, zigzag(*f.line));
  put_varint(record_, *library);
  put_varint(record_, f.address);
  end_record();
  return frame_count_++;
}

std::optional<uint32_t> SampleStreamWriter::intern_frame(const Frame& f) {
  const uint8_t flags = (f.line ? kHasLine : 0) | (f.kind == FrameKind::kNative ? kNative : 0) |
                        (f.inlined ? kInlined : 0);
  if (f.code_key != 0) {
    // The fast path: numbers only (Frame::code_key: same key and line,
    // same strings).
    const KeyedFrame key{f.code_key, f.address, f.line.value_or(0), flags};
    if (auto it = keyed_frames_.find(key); it != keyed_frames_.end()) return it->second;
    const auto id = define_frame(f);
    if (id) keyed_frames_.emplace(key, *id);
    return id;
  }
  const auto function = intern_string(f.function);
  const auto qualname = f.qualname ? intern_string(*f.qualname) : std::optional<uint32_t>(kNone);
  const auto filename = intern_string(f.filename);
  const auto library = intern_string(f.library);
  if (!function || !qualname || !filename || !library) return std::nullopt;
  const ContentFrame key{*function, *qualname, *filename, *library, f.line.value_or(0),
                         static_cast<uint8_t>(flags | (f.qualname ? kHasQualname : 0)), f.address};
  if (auto it = content_frames_.find(key); it != content_frames_.end()) return it->second;
  const auto id = define_frame(f);
  if (id) content_frames_.emplace(key, *id);
  return id;
}

std::optional<uint32_t> SampleStreamWriter::intern_thread(const ThreadSample& t) {
  const ThreadIdentity identity{t.thread_id, t.native_id};
  auto latest = thread_latest_.find(identity);
  if (latest != thread_latest_.end() && latest->second.name == t.name) return latest->second.id;
  // A new thread, or a thread renamed (or renamed back).
  auto [it, added] = thread_ids_.try_emplace({t.thread_id, t.native_id, t.name}, 0);
  if (added) {
    std::optional<uint32_t> name;
    if (t.name) name = intern_string(*t.name);
    if (thread_ids_.size() > Limits::kMaxThreads || (t.name && !name)) {
      thread_ids_.erase(it);
      return std::nullopt;
    }
    it->second = static_cast<uint32_t>(thread_ids_.size() - 1);
    begin_record(kThread);
    const uint8_t flags = (t.native_id ? kHasNativeId : 0) | (t.name ? kHasName : 0);
    record_.push_back(static_cast<char>(flags));
    put_varint(record_, t.thread_id);
    if (t.native_id) put_varint(record_, zigzag(*t.native_id));
    if (name) put_varint(record_, *name);
    end_record();
  }
  thread_latest_.insert_or_assign(identity, ThreadRef{it->second, t.name});
  return it->second;
}

bool SampleStreamWriter::sample(const ThreadSample& thread, double elapsed) {
  if (!said_hello_ || finished_)
    throw std::logic_error("SampleStreamWriter::sample outside hello() ... finish()");
  const auto thread_id = intern_thread(thread);
  if (!thread_id) return false;
  const size_t count = std::min(thread.frames.size(), Limits::kMaxSampleFrames);
  frame_ids_.clear();
  for (size_t i = 0; i < count; ++i) {
    const auto id = intern_frame(thread.frames[i]);
    if (!id) return false;
    frame_ids_.push_back(*id);
  }
  if (!(elapsed >= 0) || !std::isfinite(elapsed)) elapsed = 0;
  if (!elapsed_ || std::bit_cast<uint64_t>(*elapsed_) != std::bit_cast<uint64_t>(elapsed)) {
    out_.push_back(static_cast<char>(kTime));
    put_varint(out_, 8);
    put_f64(out_, elapsed);
    elapsed_ = elapsed;
  }
  begin_record(kSample);
  put_varint(record_, *thread_id);
  const bool truncated = thread.truncated || count < thread.frames.size();
  record_.push_back(static_cast<char>(
      (thread.holds_gil ? kGilKnown | (*thread.holds_gil ? kHoldsGil : 0) : 0) |
      (thread.idle ? kIdleKnown | (*thread.idle ? kIdle : 0) : 0) | (truncated ? kTruncated : 0)));
  put_varint(record_, count);
  for (uint32_t id : frame_ids_) put_varint(record_, id);
  end_record();
  return true;
}

void SampleStreamWriter::finish(const StreamCounters& c, StreamEnding ending) {
  if (!said_hello_ || finished_)
    throw std::logic_error("SampleStreamWriter::finish outside hello() ... finish()");
  finished_ = true;
  begin_record(kCounters);
  for (uint64_t v : {c.ticks, c.errors, c.late, c.thread_samples, c.torn, c.retries})
    put_varint(record_, v);
  record_.push_back(static_cast<char>(ending));
  end_record();
  out_.push_back(static_cast<char>(kEnd));
  put_varint(out_, 0);
}

std::string SampleStreamWriter::take() {
  std::string out = std::move(out_);
  out_.clear();
  return out;
}

// ------------------------------------------------------------------ reader

// One record's payload, read front to back; reading past its end, or
// leaving bytes unread, is an error.
class SampleStreamReader::Payload {
 public:
  Payload(const SampleStreamReader& reader, std::string_view data, const char* record)
      : reader_(reader), data_(data), record_(record) {}

  [[noreturn]] void fail(std::string_view what) const {
    reader_.fail(fmt::format("{} record: {}", record_, what));
  }
  uint8_t byte() {
    if (pos_ >= data_.size()) fail("ends early");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint64_t varint() {
    uint64_t value;
    const size_t n = get_varint(data_, pos_, value, [this](const char* what) { fail(what); });
    if (n == 0) fail("ends early");
    pos_ += n;
    return value;
  }
  uint64_t varint(uint64_t max, const char* what) {
    const uint64_t v = varint();
    if (v > max) fail(fmt::format("{} {} out of range (at most {})", what, v, max));
    return v;
  }
  std::string_view bytes(size_t n) {
    if (n > data_.size() - pos_) fail("ends early");
    pos_ += n;
    return data_.substr(pos_ - n, n);
  }
  double f64() {
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= uint64_t{byte()} << (8 * i);
    return std::bit_cast<double>(bits);
  }
  size_t remaining() const { return data_.size() - pos_; }
  void done() const {
    if (pos_ != data_.size()) fail(fmt::format("{} bytes left over", data_.size() - pos_));
  }

 private:
  const SampleStreamReader& reader_;
  std::string_view data_;
  const char* record_;
  size_t pos_ = 0;
};

SampleStreamReader::SampleStreamReader(uint32_t stream_index)
    : key_base_(kStreamKeyBit | (uint64_t{stream_index & 0x3fffffffu} << 32)) {}

void SampleStreamReader::fail(const std::string& what) const {
  throw Error(ExitCode::kFailure,
              fmt::format("sample stream from pid {}: {} (near byte {})",
                          pid_ ? std::to_string(*pid_) : "?", what, offset_));
}

size_t SampleStreamReader::parse_header(std::string_view data) {
  const size_t n = std::min(data.size(), kSampleStreamMagic.size());
  if (data.substr(0, n) != kSampleStreamMagic.substr(0, n))
    fail("not a pyflame sample stream (bad magic)");
  if (n < kSampleStreamMagic.size()) return 0;
  uint64_t version;
  const size_t v = get_varint(data, n, version, [this](const char* what) { fail(what); });
  if (v == 0) return 0;
  if (version != Limits::kFormatVersion)
    fail(fmt::format("format version {}, this pyflame reads version {} (binaries of different "
                     "pyflame releases?)",
                     version, Limits::kFormatVersion));
  header_done_ = true;
  return n + v;
}

void SampleStreamReader::feed(std::string_view bytes) {
  if (failed_) fail("already failed");
  try {
    // Whole records are decoded from `bytes` itself; only the incomplete
    // one at the end is kept (bounded: kMaxRecord and its header).
    const bool buffered = !buffer_.empty();
    if (buffered) buffer_.append(bytes);
    const std::string_view data = buffered ? std::string_view(buffer_) : bytes;
    size_t pos = 0;
    if (!header_done_) {
      pos = parse_header(data);
      offset_ += pos;
    }
    while (header_done_ && pos < data.size()) {
      if (ended_) fail("bytes after the end record");
      const auto type = static_cast<uint8_t>(data[pos]);
      if (type < kHello || type > kEnd) fail(fmt::format("unknown record type {}", type));
      uint64_t length;
      const size_t n = get_varint(data, pos + 1, length, [this](const char* what) { fail(what); });
      if (n == 0) break;
      if (length > Limits::kMaxRecord)
        fail(fmt::format("a record of {} bytes (at most {})", length, Limits::kMaxRecord));
      if (data.size() - pos - 1 - n < length) break;
      parse_record(type, data.substr(pos + 1 + n, length));
      pos += 1 + n + length;
      offset_ += 1 + n + length;
    }
    if (buffered)
      buffer_.erase(0, pos);
    else
      buffer_.assign(data.substr(pos));
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void SampleStreamReader::parse_record(uint8_t type, std::string_view payload) {
  static constexpr const char* kNames[] = {"",       "hello", "string",   "frame", "thread",
                                           "time",   "sample", "counters", "end"};
  Payload in(*this, payload, kNames[type]);
  if (type != kHello && !pid_) in.fail("before the hello record");
  if (counters_ && type != kEnd) in.fail("after the counters record");
  switch (type) {
    case kHello: {
      if (pid_) in.fail("a second one");
      const auto pid = static_cast<int>(in.varint(std::numeric_limits<int>::max(), "pid"));
      python_version_ = in.bytes(in.varint(Limits::kMaxVersionString, "version length"));
      pid_ = pid;
      break;
    }
    case kString:
      if (payload.size() > Limits::kMaxString)
        in.fail(fmt::format("{} bytes (at most {})", payload.size(), Limits::kMaxString));
      if (strings_.size() >= Limits::kMaxStrings ||
          string_bytes_ + payload.size() > Limits::kMaxStringBytes)
        in.fail("more strings than the format allows");
      strings_.emplace_back(payload);
      string_bytes_ += payload.size();
      in.bytes(payload.size());
      break;
    case kFrame: {
      if (frames_.size() >= Limits::kMaxFrames) in.fail("more frames than the format allows");
      if (strings_.empty()) in.fail("no strings defined");
      const uint64_t known = strings_.size() - 1;  // the highest string id
      StoredFrame f{};
      f.flags = in.byte();
      if (f.flags & ~kFrameFlags) in.fail(fmt::format("unknown flags {:#x}", f.flags));
      f.function = static_cast<uint32_t>(in.varint(known, "string id"));
      f.qualname = kNone;
      if (f.flags & kHasQualname) f.qualname = static_cast<uint32_t>(in.varint(known, "string id"));
      f.filename = static_cast<uint32_t>(in.varint(known, "string id"));
      if (f.flags & kHasLine) {
        const int64_t line = unzigzag(in.varint());
        if (line < std::numeric_limits<int>::min() || line > std::numeric_limits<int>::max())
          in.fail(fmt::format("line {} out of range", line));
        f.line = static_cast<int>(line);
      }
      f.library = static_cast<uint32_t>(in.varint(known, "string id"));
      f.address = in.varint();
      frames_.push_back(f);
      break;
    }
    case kThread: {
      if (threads_.size() >= Limits::kMaxThreads) in.fail("more threads than the format allows");
      StoredThread t{};
      const uint8_t flags = in.byte();
      if (flags & ~(kHasNativeId | kHasName)) in.fail(fmt::format("unknown flags {:#x}", flags));
      t.thread_id = in.varint();
      if (flags & kHasNativeId) t.native_id = unzigzag(in.varint());
      if (flags & kHasName) {
        if (strings_.empty()) in.fail("no strings defined");
        t.name = static_cast<uint32_t>(in.varint(strings_.size() - 1, "string id"));
      }
      threads_.push_back(t);
      break;
    }
    case kTime: {
      const double elapsed = in.f64();
      if (!std::isfinite(elapsed) || elapsed < 0) in.fail(fmt::format("elapsed {}", elapsed));
      elapsed_ = elapsed;
      break;
    }
    case kSample:
      read_sample(in);
      break;
    case kCounters: {
      StreamCounters c;
      for (uint64_t* v : {&c.ticks, &c.errors, &c.late, &c.thread_samples, &c.torn, &c.retries})
        *v = in.varint();
      const uint8_t ending = in.byte();
      if (ending > static_cast<uint8_t>(StreamEnding::kExeced))
        in.fail(fmt::format("unknown ending {}", ending));
      ending_ = static_cast<StreamEnding>(ending);
      counters_ = c;
      break;
    }
    case kEnd:
      if (!counters_) in.fail("before the counters record");
      ended_ = true;
      break;
  }
  in.done();
}

void SampleStreamReader::read_sample(Payload& in) {
  if (threads_.empty()) in.fail("no threads defined");
  const StoredThread& t = threads_[in.varint(threads_.size() - 1, "thread id")];
  const uint8_t flags = in.byte();
  if ((flags & ~kSampleFlags) || ((flags & kHoldsGil) && !(flags & kGilKnown)) ||
      ((flags & kIdle) && !(flags & kIdleKnown)))
    in.fail(fmt::format("bad flags {:#x}", flags));
  const size_t count = in.varint(Limits::kMaxSampleFrames, "frame count");
  if (count > in.remaining()) in.fail(fmt::format("{} frames in {} bytes", count, in.remaining()));
  if (count > 0 && frames_.empty()) in.fail("no frames defined");
  // Storage of samples taken before is reused: no allocation once warm.
  if (pending_ == samples_.size()) samples_.emplace_back();
  Sample& s = samples_[pending_];
  ThreadSample& out = s.thread;
  out.thread_id = t.thread_id;
  out.native_id = t.native_id;
  if (t.name)
    out.name = strings_[*t.name];
  else
    out.name.reset();
  out.holds_gil = flags & kGilKnown ? std::optional<bool>(flags & kHoldsGil) : std::nullopt;
  out.idle = flags & kIdleKnown ? std::optional<bool>(flags & kIdle) : std::nullopt;
  out.truncated = flags & kTruncated;
  out.torn = false;
  out.eval_calls.clear();
  out.eval_call_anchors.clear();
  out.frames.resize(count);
  for (Frame& f : out.frames) {
    const uint64_t id = in.varint(frames_.size() - 1, "frame id");
    const StoredFrame& stored = frames_[id];
    f.function = strings_[stored.function];
    if (stored.qualname == kNone)
      f.qualname.reset();
    else
      f.qualname = strings_[stored.qualname];
    f.filename = strings_[stored.filename];
    f.line = stored.flags & kHasLine ? std::optional<int>(stored.line) : std::nullopt;
    f.kind = stored.flags & kNative ? FrameKind::kNative : FrameKind::kPython;
    f.code_key = key_base_ | (stored.flags & kNative ? kNativeKeyBit : 0) | (id + 1);
    f.library = strings_[stored.library];
    f.address = stored.address;
    f.inlined = stored.flags & kInlined;
    f.locals = nullptr;
  }
  s.elapsed = elapsed_;
  ++pending_;
}

}  // namespace pyflame::core

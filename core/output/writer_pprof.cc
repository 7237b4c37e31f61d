// SPDX-License-Identifier: Apache-2.0
// The pprof format: a gzipped profile.proto message
// (github.com/google/pprof/blob/main/proto/profile.proto). The handful of
// messages it needs are encoded here by hand; a protobuf library for one
// writer is not worth the dependency.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/output/writers.h"

namespace pyflame::core {
namespace {

// Field numbers from profile.proto.
namespace proto {
constexpr uint32_t kProfileSampleType = 1;
constexpr uint32_t kProfileSample = 2;
constexpr uint32_t kProfileMapping = 3;
constexpr uint32_t kProfileLocation = 4;
constexpr uint32_t kProfileFunction = 5;
constexpr uint32_t kProfileStringTable = 6;
constexpr uint32_t kProfileDurationNanos = 10;
constexpr uint32_t kProfilePeriodType = 11;
constexpr uint32_t kProfilePeriod = 12;
constexpr uint32_t kProfileComment = 13;
constexpr uint32_t kValueTypeType = 1;
constexpr uint32_t kValueTypeUnit = 2;
constexpr uint32_t kSampleLocationId = 1;
constexpr uint32_t kSampleValue = 2;
constexpr uint32_t kSampleLabel = 3;
constexpr uint32_t kLabelKey = 1;
constexpr uint32_t kLabelStr = 2;
constexpr uint32_t kLabelNum = 3;
constexpr uint32_t kMappingId = 1;
constexpr uint32_t kMappingFilename = 5;
constexpr uint32_t kMappingHasFunctions = 7;
constexpr uint32_t kMappingHasFilenames = 8;
constexpr uint32_t kMappingHasLineNumbers = 9;
constexpr uint32_t kLocationId = 1;
constexpr uint32_t kLocationMappingId = 2;
constexpr uint32_t kLocationLine = 4;
constexpr uint32_t kLineFunctionId = 1;
constexpr uint32_t kLineLine = 2;
constexpr uint32_t kFunctionId = 1;
constexpr uint32_t kFunctionName = 2;
constexpr uint32_t kFunctionFilename = 4;
}  // namespace proto

// Protobuf wire format, appended to a string.
class ProtoWriter {
 public:
  // Scalars equal to 0 are left out, as proto3 does: readers take them as 0.
  void varint(uint32_t field, uint64_t value) {
    if (value == 0) return;
    tag(field, kVarint);
    raw_varint(value);
  }
  void varint(uint32_t field, int64_t value) { varint(field, static_cast<uint64_t>(value)); }
  void bytes(uint32_t field, std::string_view data) {
    tag(field, kLengthDelimited);
    raw_varint(data.size());
    out_ += data;
  }
  void message(uint32_t field, const ProtoWriter& message) { bytes(field, message.out_); }
  // proto3 packs repeated scalars: one length-delimited run of varints.
  void packed(uint32_t field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter run;
    for (uint64_t v : values) run.raw_varint(v);
    bytes(field, run.out_);
  }
  void append(const ProtoWriter& other) { out_ += other.out_; }
  std::string& data() { return out_; }

 private:
  enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };
  void tag(uint32_t field, WireType wire) { raw_varint(uint64_t{field} << 3 | wire); }
  void raw_varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_ += static_cast<char>((v & 0x7f) | 0x80);
    out_ += static_cast<char>(v);
  }
  std::string out_;
};

// Profile.string_table: every string is stored once and referred to by
// index; index 0 must be "".
class StringTable {
 public:
  StringTable() { index(""); }
  int64_t index(std::string_view s) {
    auto [it, added] = ids_.try_emplace(std::string(s), static_cast<int64_t>(strings_.size()));
    if (added) strings_.push_back(it->first);
    return it->second;
  }
  void write(ProtoWriter& out) const {
    for (const std::string& s : strings_) out.bytes(proto::kProfileStringTable, s);
  }

 private:
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> strings_;
};

ProtoWriter value_type(StringTable& strings, std::string_view type, std::string_view unit) {
  ProtoWriter m;
  m.varint(proto::kValueTypeType, strings.index(type));
  m.varint(proto::kValueTypeUnit, strings.index(unit));
  return m;
}

int64_t nanoseconds(double seconds) { return std::llround(seconds * 1e9); }

std::string gzip(const std::string& data) {
  z_stream z{};
  // windowBits 15 + 16 asks for a gzip wrapper (pprof reads only gzip).
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("pprof writer: zlib deflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> end(&z, deflateEnd);
  // An explicit header: mtime 0 and no file name, so the same profile always
  // gives the same bytes (golden files compare exactly).
  gz_header header{};
  header.os = 3;  // Unix, as gzip(1) writes
  deflateSetHeader(&z, &header);

  std::string out;
  const auto* in = reinterpret_cast<const Bytef*>(data.data());
  size_t left = data.size();
  char buffer[1 << 16];
  int flush = Z_NO_FLUSH;
  while (flush != Z_FINISH) {
    // avail_in is 32 bits wide: feed a huge profile in pieces.
    uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    z.next_in = const_cast<Bytef*>(in);
    z.avail_in = chunk;
    in += chunk;
    left -= chunk;
    flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof buffer;
      if (deflate(&z, flush) == Z_STREAM_ERROR)
        throw std::runtime_error("pprof writer: zlib deflate failed");
      out.append(buffer, sizeof buffer - z.avail_out);
    } while (z.avail_out == 0);
  }
  return out;
}

}  // namespace

std::string write_pprof(const Profile& profile) {
  StringTable strings;
  const int64_t interval_ns = nanoseconds(profile.interval_seconds);

  ProtoWriter sample_types;
  sample_types.message(proto::kProfileSampleType, value_type(strings, "samples", "count"));
  sample_types.message(proto::kProfileSampleType, value_type(strings, "cpu", "nanoseconds"));

  // Python frames are in one Mapping, and a C frame (--native) in its
  // library's, each saying it is already symbolized, so that pprof does
  // not look for a binary to read symbols from.
  constexpr uint64_t kPythonMappingId = 1;
  ProtoWriter mappings;
  std::map<std::string_view, uint64_t> mapping_ids;  // library -> id
  auto add_mapping = [&](uint64_t id, std::string_view library) {
    ProtoWriter mapping;
    mapping.varint(proto::kMappingId, id);
    if (!library.empty()) mapping.varint(proto::kMappingFilename, strings.index(library));
    mapping.varint(proto::kMappingHasFunctions, uint64_t{1});
    mapping.varint(proto::kMappingHasFilenames, uint64_t{1});
    mapping.varint(proto::kMappingHasLineNumbers, uint64_t{1});
    mappings.message(proto::kProfileMapping, mapping);
  };
  add_mapping(kPythonMappingId, "");
  auto mapping_of = [&](const ProfileFrame& frame) {
    if (!frame.native()) return kPythonMappingId;
    auto [it, added] = mapping_ids.try_emplace(frame.library, mapping_ids.size() + 2);
    if (added) add_mapping(it->second, frame.library);
    return it->second;
  };

  // One Function per (name, file), one Location per frame: a Location is a
  // line within a function, so pprof can show both granularities. Ids are
  // 1-based (0 means "none"); location i + 1 is profile.frames[i].
  ProtoWriter functions;
  ProtoWriter locations;
  // Keyed by copies: a C frame's name and file are made for the call.
  std::map<std::pair<std::string, std::string>, uint64_t> function_ids;
  auto add_location = [&](uint64_t id, const std::string& name, const std::string& file,
                          int line, uint64_t mapping_id) {
    auto [it, added] = function_ids.try_emplace({name, file}, function_ids.size() + 1);
    if (added) {
      ProtoWriter f;
      f.varint(proto::kFunctionId, it->second);
      f.varint(proto::kFunctionName, strings.index(name));
      // system_name stays unset: pprof takes a function whose name equals
      // its system_name as not yet demangled and cuts "<...>" out of what
      // looks like C++, which turns "<module>" into "".
      f.varint(proto::kFunctionFilename, strings.index(file));
      // start_line (co_firstlineno) is not in the profile: left 0, "unknown".
      functions.message(proto::kProfileFunction, f);
    }
    ProtoWriter l;
    l.varint(proto::kLineFunctionId, it->second);
    l.varint(proto::kLineLine, static_cast<int64_t>(line));
    ProtoWriter loc;
    loc.varint(proto::kLocationId, id);
    loc.varint(proto::kLocationMappingId, mapping_id);
    loc.message(proto::kLocationLine, l);
    locations.message(proto::kProfileLocation, loc);
  };
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const ProfileFrame& frame = profile.frames[i];
    // A C frame without DWARF is named by its library, as pprof shows files.
    add_location(i + 1, frame.native() ? frame_label(frame) : frame.function,
                 frame.native() && frame.filename.empty() ? frame.library : frame.filename, frame.line,
                 mapping_of(frame));
  }
  // A stack without Python frames (an idle thread with --idle) still counts:
  // give it one made-up location, named as the collapsed writer names it.
  const uint64_t no_frames_id = profile.frames.size() + 1;
  bool have_no_frames = false;
  static const std::string kNoFrames = "<no Python frames>";
  static const std::string kNoFile;

  // The thread goes into labels rather than a root frame, also under
  // --threads: `pprof -tagroot=thread` makes it a root when wanted.
  const int64_t thread_key = strings.index("thread");
  const int64_t thread_id_key = strings.index("thread_id");
  std::vector<int64_t> thread_labels;
  for (const ProfileThread& thread : profile.threads)
    thread_labels.push_back(strings.index(thread_label(thread)));
  // --subprocesses: the process too, as labels (`-tagroot=process`).
  const bool by_process = profile.process_roots;
  const int64_t process_key = by_process ? strings.index("process") : 0;
  const int64_t pid_key = by_process ? strings.index("pid") : 0;
  std::vector<int64_t> process_labels;
  if (by_process)
    for (const ProfileProcess& process : profile.processes)
      process_labels.push_back(strings.index(process_label(process)));

  ProtoWriter samples;
  std::vector<uint64_t> ids;
  for (const ProfileStack& stack : profile.stacks) {
    if (stack.count == 0) continue;
    ids.clear();
    // pprof puts the leaf first; our stacks are root first.
    for (auto it = stack.frames.rbegin(); it != stack.frames.rend(); ++it) ids.push_back(*it + 1);
    if (ids.empty()) {
      if (!have_no_frames) add_location(no_frames_id, kNoFrames, kNoFile, 0, kPythonMappingId);
      have_no_frames = true;
      ids.push_back(no_frames_id);
    }
    ProtoWriter s;
    s.packed(proto::kSampleLocationId, ids);
    s.packed(proto::kSampleValue,
             {stack.count, stack.count * static_cast<uint64_t>(interval_ns)});
    const ProfileThread& thread = profile.threads.at(stack.thread);
    ProtoWriter name;
    name.varint(proto::kLabelKey, thread_key);
    name.varint(proto::kLabelStr, thread_labels[stack.thread]);
    s.message(proto::kSampleLabel, name);
    if (by_process && thread.process < profile.processes.size()) {
      ProtoWriter process;
      process.varint(proto::kLabelKey, process_key);
      process.varint(proto::kLabelStr, process_labels[thread.process]);
      s.message(proto::kSampleLabel, process);
      ProtoWriter pid;
      pid.varint(proto::kLabelKey, pid_key);
      pid.varint(proto::kLabelNum, static_cast<int64_t>(profile.processes[thread.process].pid));
      s.message(proto::kSampleLabel, pid);
    }
    if (thread.native_id) {
      ProtoWriter tid;
      tid.varint(proto::kLabelKey, thread_id_key);
      tid.varint(proto::kLabelNum, *thread.native_id);
      s.message(proto::kSampleLabel, tid);
    }
    samples.message(proto::kProfileSample, s);
  }

  // time_nanos is left out: the profile has no start time, and a fixed
  // profile must give fixed bytes.
  ProtoWriter tail;
  tail.varint(proto::kProfileDurationNanos, nanoseconds(profile.duration_seconds));
  tail.message(proto::kProfilePeriodType, value_type(strings, "cpu", "nanoseconds"));
  tail.varint(proto::kProfilePeriod, interval_ns);
  std::vector<uint64_t> comments;
  if (!profile.target.empty()) comments.push_back(strings.index(profile.target));
  if (profile.pid != 0) comments.push_back(strings.index(fmt::format("pid {}", profile.pid)));
  if (!profile.python_version.empty())
    comments.push_back(strings.index("Python " + profile.python_version));
  tail.packed(proto::kProfileComment, comments);

  // Fields in number order, as protobuf encoders write them.
  ProtoWriter out;
  out.append(sample_types);
  out.append(samples);
  out.append(mappings);
  out.append(locations);
  out.append(functions);
  strings.write(out);
  out.append(tail);
  return gzip(out.data());
}

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
// The sample stream (core/output/sample_stream.h): what the writer encodes
// the reader gives back, in any chunking; a repeated sample costs a few
// bytes; malformed and over-bound input is an Error, never a crash.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/output/profile.h"
#include "core/output/sample_stream.h"
#include "profile_fixture.h"

using namespace pyflame;
using core::Frame;
using core::FrameKind;
using core::SampleStreamLimits;
using core::SampleStreamReader;
using core::SampleStreamWriter;
using core::StreamCounters;
using core::StreamEnding;
using core::ThreadSample;

namespace {

// Everything the stream carries; not the code key, which the reader makes.
void check_same_frame(const Frame& got, const Frame& want) {
  CHECK(got.function == want.function);
  CHECK(got.qualname == want.qualname);
  CHECK(got.filename == want.filename);
  CHECK(got.line == want.line);
  CHECK(got.kind == want.kind);
  CHECK(got.library == want.library);
  CHECK(got.address == want.address);
  CHECK(got.inlined == want.inlined);
  CHECK(got.code_key != 0);
  CHECK(got.locals == nullptr);
}

void check_same_sample(const SampleStreamReader::Sample& got, const ThreadSample& want,
                       double elapsed) {
  CHECK(got.elapsed == elapsed);
  CHECK(got.thread.thread_id == want.thread_id);
  CHECK(got.thread.native_id == want.native_id);
  CHECK(got.thread.name == want.name);
  CHECK(got.thread.holds_gil == want.holds_gil);
  CHECK(got.thread.idle == want.idle);
  CHECK(got.thread.truncated == want.truncated);
  CHECK_FALSE(got.thread.torn);
  REQUIRE(got.thread.frames.size() == want.frames.size());
  for (size_t i = 0; i < want.frames.size(); ++i) check_same_frame(got.thread.frames[i], want.frames[i]);
}

Frame python_frame(std::string_view function, std::string_view filename, std::optional<int> line,
                   uint64_t key, std::optional<std::string_view> qualname = std::nullopt) {
  Frame f;
  f.function = function;
  f.qualname = qualname;
  f.filename = filename;
  f.line = line;
  f.code_key = key;
  return f;
}

// Two threads: Python frames with and without qualname and line, native
// frames (inlined, no DWARF line, the unwinding marker), non-ASCII and
// empty strings, every optional field present in one and absent in the other.
std::vector<ThreadSample> varied_samples() {
  ThreadSample main;
  main.thread_id = 0x7f0000001000;
  main.native_id = 100;
  main.name = "python3 ñ";
  main.holds_gil = true;
  main.idle = false;
  Frame spin = test::native_frame("int ns::spin<int>(int)", "/srv/lib/native_cpp.so", 1, "spin.cc", 9);
  spin.address = 0x7f1234567890;
  Frame inlined = test::native_frame("helper", "/srv/lib/native_cpp.so", 2);
  inlined.address = 0x7f1234567890;
  inlined.inlined = true;
  main.frames = {spin, inlined, python_frame("run", "/srv/app.py", 12, 1, "App.run"),
                 python_frame("関数", "/srv/dir ñ/関.py", 3, 2),
                 python_frame("<module>", "/srv/app.py", 40, 3)};
  ThreadSample worker;
  worker.thread_id = 0x7f0000002000;
  worker.truncated = true;
  worker.frames = {python_frame("", "", std::nullopt, 4),
                   test::native_frame("[native stack not unwound further]", "", 0),
                   python_frame("nokey", "/srv/x.py", -1, 0), python_frame("nokey", "/srv/x.py", 0, 0)};
  ThreadSample idle;
  idle.thread_id = 3;
  idle.native_id = -5;
  idle.name = "";
  idle.holds_gil = false;
  idle.idle = true;
  return {main, worker, idle};
}

std::string encode(const std::vector<ThreadSample>& samples, int repeat = 1) {
  SampleStreamWriter w;
  w.hello(4242, "3.11.7");
  for (int r = 0; r < repeat; ++r)
    for (size_t i = 0; i < samples.size(); ++i) REQUIRE(w.sample(samples[i], 0.5 * r + 0.01 * i));
  w.finish({10, 1, 2, 30, 4, 5}, StreamEnding::kExited);
  return w.take();
}

std::string header() {
  std::string h(core::kSampleStreamMagic);
  h.push_back(1);
  return h;
}

std::string record(uint8_t type, std::string_view payload) {
  std::string r(1, static_cast<char>(type));
  r.push_back(static_cast<char>(payload.size()));  // tests keep payloads under 128 bytes
  r.append(payload);
  return r;
}

// A hello for pid 7, one string "f", one frame of it, one thread 1.
std::string defined_prefix() {
  return header() + record(1, std::string("\x07\x03" "3.9", 5)) + record(2, "f") +
         record(3, std::string("\x00\x00\x00\x00\x00", 5)) + record(4, std::string("\x00\x01", 2));
}

void check_rejects(const std::string& bytes, const std::string& message_part) {
  SampleStreamReader r;
  try {
    r.feed(bytes);
    FAIL("accepted: " << message_part);
  } catch (const core::Error& e) {
    CHECK(e.code() == core::ExitCode::kFailure);
    CHECK_THAT(e.what(), Catch::Contains(message_part));
  }
  // And stays failed.
  CHECK_THROWS_AS(r.feed(""), core::Error);
}

}  // namespace

TEST_CASE("sample stream: a round trip gives back every field") {
  const auto samples = varied_samples();
  const std::string bytes = encode(samples, 3);
  SampleStreamReader r;
  r.feed(bytes);
  CHECK(r.pid() == 4242);
  CHECK(r.python_version() == "3.11.7");
  REQUIRE(r.samples().size() == 9);
  for (int rep = 0; rep < 3; ++rep)
    for (size_t i = 0; i < samples.size(); ++i)
      check_same_sample(r.samples()[rep * samples.size() + i], samples[i], 0.5 * rep + 0.01 * i);
  REQUIRE(r.ended());
  CHECK(r.counters() == StreamCounters{10, 1, 2, 30, 4, 5});
  CHECK(r.ending() == StreamEnding::kExited);
  // Native frames keep the native bit in their keys; one frame, one key.
  const auto& first = r.samples()[0].thread.frames;
  const auto& again = r.samples()[3].thread.frames;
  CHECK((first[0].code_key & core::kNativeKeyBit) != 0);
  CHECK((first[2].code_key & core::kNativeKeyBit) == 0);
  std::set<uint64_t> keys;
  for (size_t i = 0; i < first.size(); ++i) {
    CHECK(first[i].code_key == again[i].code_key);
    keys.insert(first[i].code_key);
  }
  CHECK(keys.size() == first.size());
  // Frames without keys differing only in line are two frames.
  const auto& worker = r.samples()[1].thread.frames;
  CHECK(worker[2].code_key != worker[3].code_key);
}

TEST_CASE("sample stream: decoded samples make the same profile as the originals") {
  const auto samples = varied_samples();
  core::Profile direct, decoded;
  core::ProfileBuilder direct_builder(direct), decoded_builder(decoded);
  for (int rep = 0; rep < 2; ++rep)
    for (const auto& s : samples) direct_builder.add(s);
  SampleStreamReader r;
  r.feed(encode(samples, 2));
  for (const auto& s : r.samples()) decoded_builder.add(s.thread);
  CHECK(decoded.frames == direct.frames);
  CHECK(decoded.threads == direct.threads);
  REQUIRE(decoded.stacks.size() == direct.stacks.size());
  for (size_t i = 0; i < direct.stacks.size(); ++i) {
    CHECK(decoded.stacks[i].frames == direct.stacks[i].frames);
    CHECK(decoded.stacks[i].count == direct.stacks[i].count);
  }
}

TEST_CASE("sample stream: any chunking decodes the same; a prefix decodes its whole records") {
  const auto samples = varied_samples();
  SampleStreamWriter w;
  w.hello(1, "2.7.18");
  std::string bytes = w.take();
  std::vector<size_t> ends;  // where each sample's bytes end
  for (int rep = 0; rep < 2; ++rep)
    for (const auto& s : samples) {
      REQUIRE(w.sample(s, rep));
      bytes += w.take();
      ends.push_back(bytes.size());
    }
  w.finish({}, StreamEnding::kStopped);
  bytes += w.take();

  SECTION("byte at a time") {
    SampleStreamReader r;
    for (char c : bytes) r.feed(std::string_view(&c, 1));
    REQUIRE(r.samples().size() == 6);
    for (size_t i = 0; i < 6; ++i) check_same_sample(r.samples()[i], samples[i % 3], i / 3);
    CHECK(r.ended());
    CHECK(r.ending() == StreamEnding::kStopped);
  }
  SECTION("every prefix: no error, only the samples whose record is whole") {
    for (size_t n = 0; n < bytes.size(); ++n) {
      SampleStreamReader r;
      r.feed(std::string_view(bytes).substr(0, n));
      const auto whole = static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), n) - ends.begin());
      REQUIRE(r.samples().size() == whole);
      CHECK_FALSE(r.ended());
      r.feed(std::string_view(bytes).substr(n));  // the rest arrives: all of it
      CHECK(r.samples().size() == 6);
      CHECK(r.ended());
    }
  }
  SECTION("samples taken and cleared between feeds; their storage is reused") {
    SampleStreamReader r;
    size_t seen = 0;
    for (size_t at = 0; at < bytes.size(); at += 7) {
      r.feed(std::string_view(bytes).substr(at, 7));
      for (const auto& s : r.samples()) {
        check_same_sample(s, samples[seen % 3], static_cast<double>(seen / 3));
        ++seen;
      }
      r.clear_samples();
    }
    CHECK(seen == 6);
  }
}

TEST_CASE("sample stream: a repeated sample costs about a byte per frame") {
  std::vector<std::string> files;
  for (int i = 0; i < 100; ++i) files.push_back("/srv/app/module_" + std::to_string(i) + ".py");
  ThreadSample t;
  t.thread_id = 0x7f0000001000;
  t.native_id = 1234;
  t.name = "python3";
  t.holds_gil = true;
  for (int i = 0; i < 100; ++i)
    t.frames.push_back(python_frame("function_name", files[i], 10 + i, 1 + i, "Class.function_name"));
  SampleStreamWriter w;
  w.hello(1, "3.12.1");
  w.take();
  REQUIRE(w.sample(t, 0.01));
  const size_t first = w.take().size();
  REQUIRE(w.sample(t, 0.02));
  const size_t repeated = w.take().size();  // with a time record
  REQUIRE(w.sample(t, 0.02));
  const size_t same_tick = w.take().size();
  INFO("100-frame sample: first " << first << " bytes, repeated " << repeated << " bytes ("
                                   << same_tick << " in the same tick)");
  CHECK(same_tick == 1 + 1 + 1 + 1 + 1 + 100);  // type, length (1 byte: 104 < 128), thread, flags, count, ids
  CHECK(repeated == same_tick + 10);            // the time record: type, length, f64
  CHECK(first > 2000);                          // strings and frames defined once
  // Past 127 frames ids take two bytes.
  for (int i = 100; i < 300; ++i) t.frames.push_back(python_frame("f", "/srv/g.py", i, 1000 + i));
  REQUIRE(w.sample(t, 0.02));
  w.take();
  REQUIRE(w.sample(t, 0.02));
  CHECK(w.take().size() <= 2 * t.frames.size() + 8);
}

TEST_CASE("sample stream: threads are defined once per distinct name") {
  ThreadSample t;
  t.thread_id = 9;
  t.frames = {python_frame("f", "/a.py", 1, 1)};
  SampleStreamWriter w;
  w.hello(1, "3.12.1");
  REQUIRE(w.sample(t, 0));
  w.take();
  REQUIRE(w.sample(t, 0));
  const size_t plain = w.take().size();
  t.name = "renamed";
  REQUIRE(w.sample(t, 0));
  CHECK(w.take().size() > plain);  // a new string, a new thread
  t.name.reset();
  REQUIRE(w.sample(t, 0));
  CHECK(w.take().size() == plain);  // renamed back: the first thread's id again
  t.name = "renamed";
  REQUIRE(w.sample(t, 0));
  CHECK(w.take().size() == plain);
}

TEST_CASE("sample stream: the writer keeps within the bounds") {
  SampleStreamWriter w;
  w.hello(-3, std::string(1000, 'v'));
  ThreadSample t;
  t.thread_id = 1;
  // "é" is two bytes: a cut at an odd length backs off to a whole character.
  std::string long_name;
  while (long_name.size() < SampleStreamLimits::kMaxString + 10) long_name += "é";
  const std::string odd = "x" + long_name;
  Frame f = python_frame(odd, "/a.py", 1, 1);
  for (size_t i = 0; i < SampleStreamLimits::kMaxSampleFrames + 5; ++i) t.frames.push_back(f);
  REQUIRE(w.sample(t, std::nan("")));
  REQUIRE(w.sample(t, -1));
  SampleStreamReader r;
  r.feed(w.take());
  CHECK(r.pid() == 0);
  CHECK(r.python_version().size() == SampleStreamLimits::kMaxVersionString);
  REQUIRE(r.samples().size() == 2);
  const ThreadSample& got = r.samples()[0].thread;
  CHECK(got.truncated);
  CHECK(got.frames.size() == SampleStreamLimits::kMaxSampleFrames);
  CHECK(got.frames[0].function.size() == SampleStreamLimits::kMaxString - 1);
  CHECK(odd.starts_with(got.frames[0].function));
  CHECK(r.samples()[0].elapsed == 0);
  CHECK(r.samples()[1].elapsed == 0);
}

TEST_CASE("sample stream: writer misuse is a logic error") {
  SampleStreamWriter w;
  CHECK_THROWS_AS(w.sample(ThreadSample(), 0), std::logic_error);
  w.hello(1, "3.8.0");
  CHECK_THROWS_AS(w.hello(1, "3.8.0"), std::logic_error);
  w.finish({}, StreamEnding::kExeced);
  CHECK_THROWS_AS(w.sample(ThreadSample(), 0), std::logic_error);
  CHECK_THROWS_AS(w.finish({}, StreamEnding::kExeced), std::logic_error);
}

TEST_CASE("sample stream: decoded keys differ between streams") {
  const auto samples = varied_samples();
  const std::string bytes = encode(samples);
  SampleStreamReader a(0), b(1);
  a.feed(bytes);
  b.feed(bytes);
  const uint64_t key_a = a.samples()[0].thread.frames[2].code_key;
  const uint64_t key_b = b.samples()[0].thread.frames[2].code_key;
  CHECK(key_a != key_b);
  CHECK((key_a & (uint64_t{1} << 62)) != 0);
}

TEST_CASE("sample stream: malformed input is an Error as soon as it is proven") {
  SECTION("header") {
    check_rejects("PYFX", "bad magic");
    check_rejects(std::string(core::kSampleStreamMagic) + "\x02", "format version 2");
    check_rejects(std::string(core::kSampleStreamMagic) + std::string("\x81\x00", 2), "trailing zero");
    SampleStreamReader r;
    r.feed("PYFL");  // so far so good
    r.feed(std::string(core::kSampleStreamMagic).substr(4));
    r.feed("\x01");
    CHECK(r.samples().empty());
  }
  SECTION("records") {
    check_rejects(header() + "\x09", "unknown record type 9");
    check_rejects(header() + std::string(1, '\0'), "unknown record type 0");
    check_rejects(header() + record(2, "f"), "before the hello");
    check_rejects(header() + record(1, "\x07"), "hello record: ends early");
    check_rejects(header() + record(1, std::string("\x07\x00\x00", 3)), "left over");
    check_rejects(header() + record(1, "\xff\xff\xff\xff\x0f"), "pid");
    check_rejects(defined_prefix() + record(1, std::string("\x07\x00", 2)), "a second one");
    check_rejects(defined_prefix() + record(3, std::string("\x00\x01\x00\x00\x00", 5)), "string id 1");
    check_rejects(defined_prefix() + record(3, std::string("\x40\x00\x00\x00\x00", 5)), "unknown flags");
    check_rejects(defined_prefix() + record(6, std::string("\x01\x00\x01\x00", 4)), "thread id 1");
    check_rejects(defined_prefix() + record(6, std::string("\x00\x00\x01\x01", 4)), "frame id 1");
    check_rejects(defined_prefix() + record(6, std::string("\x00\x02\x01\x00", 4)), "bad flags");
    check_rejects(defined_prefix() + record(6, std::string("\x00\x00\x05\x00", 4)), "5 frames in 1 bytes");
    check_rejects(defined_prefix() + record(5, std::string("\x00\x00\x00\x00\x00\x00\xf8\x7f", 8)), "elapsed nan");
    check_rejects(defined_prefix() + record(5, std::string("\x00\x00\x00\x00\x00\x00\xf0\xbf", 8)), "elapsed -1");
    check_rejects(defined_prefix() + record(8, ""), "before the counters");
    const std::string counters = record(7, std::string("\x00\x00\x00\x00\x00\x00\x00", 7));
    check_rejects(defined_prefix() + record(7, std::string("\x00\x00\x00\x00\x00\x00\x03", 7)), "unknown ending");
    check_rejects(defined_prefix() + counters + record(2, "g"), "after the counters");
    check_rejects(defined_prefix() + counters + record(8, "") + "\x02", "after the end");
    // A whole stream, then a record that proves it bad: the samples before it stay.
    SampleStreamReader r;
    r.feed(defined_prefix() + record(6, std::string("\x00\x00\x01\x00", 4)));
    CHECK(r.samples().size() == 1);
    CHECK_THROWS_AS(r.feed(record(6, std::string("\x00\x00\x01\x07", 4))), core::Error);
    CHECK(r.samples().size() == 1);
  }
  SECTION("bounds") {
    // The record's length alone proves it too long: no need to wait for it.
    check_rejects(header() + "\x02\xff\xff\xff\x7f", "a record of");
    std::string big_string = header() + record(1, std::string("\x07\x00", 2)) + "\x02\x81\x80\x04";
    big_string += std::string(SampleStreamLimits::kMaxString + 1, 'x');
    check_rejects(big_string, "string record: 65537 bytes");
    std::string many_frames = defined_prefix() + record(6, std::string("\x00\x00\x81\x80\x02", 5));
    check_rejects(many_frames, "frame count 32769");
    check_rejects(header() + record(1, "\x07\x81\x02"), "version length 257");
    check_rejects(header() + "\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", "beyond 64 bits");
  }
}

TEST_CASE("sample stream: no corruption of a stream crashes the reader") {
  const std::string bytes = encode(varied_samples(), 2);
  int rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t value : {uint8_t{0}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff},
                          static_cast<uint8_t>(bytes[i] ^ 1)}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(value);
      SampleStreamReader r;
      try {
        r.feed(bad);
        for (const auto& s : r.samples())
          for (const Frame& f : s.thread.frames) CHECK(f.code_key != 0);
      } catch (const core::Error&) {
        ++rejected;
      }
    }
  }
  CHECK(rejected > 0);
}

#ifdef PYFLAME_FUZZ_CORPUS_DIR
TEST_CASE("sample stream: the fuzz seeds, written by make_corpus.py's encoder, decode") {
  // test/fuzz/make_corpus.py encodes from docs/how-it-works.md, not from
  // this code: a second writer of the format. Seeds named bad_* must fail.
  const std::filesystem::path dir = std::filesystem::path(PYFLAME_FUZZ_CORPUS_DIR) / "sample_stream";
  int good = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), {}};
    const std::string name = entry.path().filename().string();
    INFO(name);
    if (bytes.empty()) continue;
    // The fuzz target's first byte picks a chunk size; the rest is the stream.
    const std::string_view stream = std::string_view(bytes).substr(1);
    SampleStreamReader r;
    if (name.starts_with("bad_")) {
      CHECK_THROWS_AS(r.feed(stream), core::Error);
      continue;
    }
    REQUIRE_NOTHROW(r.feed(stream));
    if (name.starts_with("whole_")) CHECK(r.ended());
    ++good;
  }
  CHECK(good >= 3);
}
#endif

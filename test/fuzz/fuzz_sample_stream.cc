// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the sample stream reader (core/output/sample_stream.h), the
// parent's decoder of what a sibling pyflame sends under --subprocesses.
// Input: one byte that picks a chunk size, then the stream. Checks: fed
// whole or in chunks the reader decodes the same samples and fails alike;
// what it accepts is within the format's bounds; and what it accepts, the
// writer encodes again into a stream that decodes to the same.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "core/output/sample_stream.h"
#include "test/fuzz/fuzz_input.h"

namespace {

using pyflame::core::Frame;
using pyflame::core::SampleStreamLimits;
using pyflame::core::SampleStreamReader;
using pyflame::core::SampleStreamWriter;
using pyflame::fuzz::fail;

struct Outcome {
  bool failed = false;
  size_t samples = 0;
};

Outcome decode(SampleStreamReader& r, std::string_view stream, size_t chunk) {
  Outcome o;
  try {
    if (chunk == 0) {
      r.feed(stream);
    } else {
      for (size_t at = 0; at < stream.size(); at += chunk) r.feed(stream.substr(at, chunk));
    }
  } catch (const pyflame::core::Error&) {
    o.failed = true;
  }
  o.samples = r.samples().size();
  return o;
}

bool same_frame(const Frame& a, const Frame& b) {
  return a.function == b.function && a.qualname == b.qualname && a.filename == b.filename &&
         a.line == b.line && a.kind == b.kind && a.library == b.library && a.address == b.address &&
         a.inlined == b.inlined;
}

bool same_sample(const SampleStreamReader::Sample& a, const SampleStreamReader::Sample& b) {
  const auto &x = a.thread, &y = b.thread;
  if (a.elapsed != b.elapsed || x.thread_id != y.thread_id || x.native_id != y.native_id ||
      x.name != y.name || x.holds_gil != y.holds_gil || x.idle != y.idle ||
      x.truncated != y.truncated || x.frames.size() != y.frames.size())
    return false;
  for (size_t i = 0; i < x.frames.size(); ++i)
    if (!same_frame(x.frames[i], y.frames[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pyflame::fuzz::FuzzInput in(data, size);
  const size_t chunk = in.take<uint8_t>() % 64;  // 0: all at once
  const std::string_view stream = in.rest();

  SampleStreamReader whole;
  const Outcome a = decode(whole, stream, 0);
  SampleStreamReader chunked;
  const Outcome b = decode(chunked, stream, chunk == 0 ? 1 : chunk);
  if (a.failed != b.failed || a.samples != b.samples) fail("chunking changed the outcome");

  for (const auto& s : whole.samples()) {
    if (s.thread.frames.size() > SampleStreamLimits::kMaxSampleFrames) fail("too many frames");
    for (const Frame& f : s.thread.frames) {
      if ((f.code_key & (uint64_t{1} << 62)) == 0) fail("a decoded key without the stream bit");
      if (f.function.size() > SampleStreamLimits::kMaxString) fail("a string beyond the bound");
    }
  }
  if (!whole.pid()) {
    if (whole.samples().size() != 0) fail("samples without a hello");
    return 0;
  }

  // Encode what was accepted, and decode it again.
  SampleStreamWriter writer;
  writer.hello(*whole.pid(), whole.python_version());
  for (const auto& s : whole.samples())
    if (!writer.sample(s.thread, s.elapsed)) fail("the writer refused a decoded sample");
  if (whole.counters()) writer.finish(*whole.counters(), *whole.ending());
  SampleStreamReader again;
  try {
    again.feed(writer.take());
  } catch (const pyflame::core::Error& e) {
    fail("the reader refused the writer's stream", e.what());
  }
  if (again.pid() != whole.pid() || again.python_version() != whole.python_version() ||
      again.counters() != whole.counters() || again.ending() != whole.ending() ||
      again.ended() != whole.counters().has_value())
    fail("hello or counters changed in a round trip");
  if (again.samples().size() != whole.samples().size()) fail("a round trip lost samples");
  for (size_t i = 0; i < whole.samples().size(); ++i)
    if (!same_sample(whole.samples()[i], again.samples()[i])) fail("a round trip changed a sample");
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the frame walker of one version (linked with that version's
// layout table) over a fake interpreter image (test/walker/fake_image.h)
// that the input corrupts: wild pointers, cycles, pointers into the middle
// of other objects, huge lengths, wrong type pointers, torn bytes. The image
// starts well-formed so that every corruption lands on a path the walker
// really takes. Whatever the damage, sample() must return (no crash, no
// hang, no sanitizer report), and what it returns must be safe to write:
// bounded stacks, names decoded from str objects valid UTF-8, and the
// collapsed writer must take it all; and the frames the walker keeps from
// its last stacks must equal a whole walk of the same bytes. A sample taken
// while the image changes (a field written between two of the walker's
// reads) must show each thread it does not call torn as that thread was
// before the change or after it, never a mix.
//
// Input: three bytes of shape (threads 1-3, stack depth 1-24, distinct
// functions 1-8), then patches until the input ends, each a kind byte:
//   0  raw bytes: u32 image offset, u8 length (<= 16), the bytes
//   1  field = u64 value                      (u16 field index)
//   2  field = address of an object + 8 * i8   (u16 field, u16 object, i8)
//   3  field = special: 0, ~0, 2^40, unmapped, its own address, image end
//   4  take a sample now (the next one reuses the walker's caches)
//   5  take a sample while the image changes: u8 reads before the change,
//      then a field write as kind 1-3 (u8 kind, then its operands)
// Field and object indexes wrap: every value names something.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/output/profile.h"
#include "core/sampling/snapshot.h"
#include "core/output/utf8.h"
#include "core/output/writers.h"
#include "test/fuzz/fuzz_input.h"
#include "test/walker/fake_image.h"

namespace {

using pyflame::fuzz::fail;
using pyflame::fuzz::FuzzInput;
using pyflame::test::FakeImage;

// Every field of every object, flattened.
std::vector<FakeImage::Field> all_fields(const FakeImage& image) {
  std::vector<FakeImage::Field> fields;
  for (const auto& o : image.objects()) fields.insert(fields.end(), o.fields.begin(), o.fields.end());
  return fields;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = pyflame::core::utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void check(const pyflame::core::Snapshot& snapshot) {
  // 2.7's names are byte strings, any bytes (the writers make them valid);
  // from a str, the walker must decode to valid UTF-8 itself.
  const bool must_be_utf8 = pyflame_measured_layout()->string_model != PYFLAME_STRINGS_BYTES;
  if (snapshot.threads.size() > 4096) fail("more threads than the walker's bound");
  for (const auto& t : snapshot.threads) {
    if (t.frames.size() > 16385) fail("a stack longer than the walker's bound");
    for (const auto& f : t.frames) {
      if (must_be_utf8 && (!valid_utf8(f.function) || !valid_utf8(f.filename) ||
                           (f.qualname && !valid_utf8(*f.qualname))))
        fail("a frame with invalid UTF-8", f.function);
    }
  }
}

// The frames a walker keeps from its last stacks must be the frames it
// would make anew: the same walker, right after, into a fresh snapshot
// (which it fills whole) must give the same stacks.
void same_as_whole_walk(pyflame::core::Interpreter& walker, const pyflame::core::Snapshot& seen) {
  pyflame::core::Snapshot fresh;
  if (!walker.sample(fresh)) fail("the same bytes sampled again were refused");
  if (fresh.threads.size() != seen.threads.size()) fail("thread counts differ from a whole walk");
  for (size_t t = 0; t < seen.threads.size(); ++t) {
    const auto& a = seen.threads[t].frames;
    const auto& b = fresh.threads[t].frames;
    if (a.size() != b.size()) fail("stack depths differ from a whole walk");
    for (size_t i = 0; i < a.size(); ++i)
      if (!(a[i] == b[i])) fail("a kept frame differs from a whole walk", a[i].function);
  }
}

// The image as a target whose bytes change while it is read: after
// `calls_before` of the walker's calls, `change` is applied.
class MovingImage : public pyflame::core::Memory {
 public:
  MovingImage(const FakeImage& image, int calls_before, std::function<void()> change)
      : image_(image), left_(calls_before), change_(std::move(change)) {}

  bool read(pyflame::core::RemoteAddr addr, std::span<std::byte> into) const override {
    tick();
    return image_.read(addr, into);
  }
  void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const override {
    tick();
    image_.read_many(requests, ok);
  }
  size_t read_prefix(pyflame::core::RemoteAddr addr, std::span<std::byte> into) const override {
    tick();
    return image_.read_prefix(addr, into);
  }

 private:
  void tick() const {
    if (left_-- == 0) change_();
  }
  const FakeImage& image_;
  mutable int left_;
  std::function<void()> change_;
};

// A whole walk of the image as it is, by a fresh walker (kept: the frames
// view its caches); no snapshot if it is refused.
struct Moment {
  std::unique_ptr<pyflame::core::Interpreter> walker;
  std::optional<pyflame::core::Snapshot> snapshot;
};

Moment walk_now(const FakeImage& image) {
  Moment m;
  try {
    m.walker = pyflame::versions::make_layout_interpreter(*pyflame_measured_layout(), image, 1,
                                                          image.symbols());
    pyflame::core::Snapshot s;
    if (m.walker->sample(s)) m.snapshot = std::move(s);
  } catch (const pyflame::core::Error&) {
  }
  return m;
}

// Whether `thread` is, frame for frame, a thread of `moment` that its walk
// did not call torn.
bool seen_in(const pyflame::core::ThreadSample& thread, const Moment& moment) {
  if (!moment.snapshot) return false;
  // Frames as a user sees them: code keys are each walker's own.
  auto same = [](const pyflame::core::Frame& a, const pyflame::core::Frame& b) {
    return a.function == b.function && a.qualname == b.qualname && a.filename == b.filename &&
           a.line == b.line;
  };
  for (const auto& t : moment.snapshot->threads)
    if (!t.torn && t.thread_id == thread.thread_id &&
        std::ranges::equal(t.frames, thread.frames, same))
      return true;
  return false;
}

// A stack for a failure message.
std::string show(const std::vector<pyflame::core::Frame>& frames) {
  std::string out;
  for (const auto& f : frames) out += std::string(f.function) + ":" + std::to_string(f.line.value_or(-1)) + " ";
  for (char& c : out)
    if (c == 0) c = '?';
  return out;
}

std::string show_all(const Moment& m) {
  if (!m.snapshot) return "refused";
  std::string out;
  for (const auto& t : m.snapshot->threads)
    out += "[" + std::to_string(t.thread_id) + (t.torn ? " torn " : " ") + show(t.frames) + "] ";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const int threads = 1 + in.take<uint8_t>() % 3;
  const int depth = 1 + in.take<uint8_t>() % 24;
  const int functions = 1 + in.take<uint8_t>() % 8;
  std::vector<pyflame::test::FakeThread> spec;
  for (int t = 0; t < threads; ++t) {
    pyflame::test::FakeThread thread{0x1000u + static_cast<uint64_t>(t), 100 + t, {}};
    for (int d = 0; d < depth; ++d) {
      const int f = (d + t) % functions;
      thread.frames.push_back({"func" + std::to_string(f), "mod" + std::to_string(f) + ".py", 10 * f + 1});
    }
    spec.push_back(std::move(thread));
  }
  FakeImage image(*pyflame_measured_layout(), spec);
  const std::vector<FakeImage::Field> fields = all_fields(image);
  const auto& objects = image.objects();

  std::unique_ptr<pyflame::core::Interpreter> walker;
  pyflame::core::Snapshot snapshot;
  pyflame::core::Profile profile;
  pyflame::core::ProfileBuilder builder(profile);
  auto take_sample = [&] {
    try {
      // Built at the first sample: locating reads the image too.
      if (!walker)
        walker = pyflame::versions::make_layout_interpreter(*pyflame_measured_layout(), image, 1,
                                                            image.symbols());
    } catch (const pyflame::core::Error&) {
      return false;  // not an interpreter any more: a clean refusal
    }
    if (walker->sample(snapshot)) {
      check(snapshot);
      same_as_whole_walk(*walker, snapshot);
      for (const auto& t : snapshot.threads) builder.add(t);
    }
    return true;
  };

  // Reads the operands of a field write of `kind` (1-3) and returns the
  // field and the value to write.
  auto field_write = [&](uint8_t kind) {
    const FakeImage::Field& field = fields[in.take<uint16_t>() % fields.size()];
    uint64_t value = 0;
    if (kind == 1) {
      value = in.take<uint64_t>();
    } else if (kind == 2) {
      const auto& target = objects[in.take<uint16_t>() % objects.size()];
      value = target.addr + static_cast<uint64_t>(8 * static_cast<int64_t>(in.take<int8_t>()));
    } else {
      const uint64_t specials[] = {0, ~uint64_t{0}, uint64_t{1} << 40, FakeImage::kUnmapped,
                                   field.addr, image.base() + image.size() - 4};
      value = specials[in.take<uint8_t>() % std::size(specials)];
    }
    return std::pair<FakeImage::Field, uint64_t>(field, value);
  };
  auto write_field = [&](const FakeImage::Field& field, uint64_t value) {
    image.write(field.addr, std::as_bytes(std::span(&value, 1)).first(std::min<size_t>(field.size, 8)));
  };
  // Samples by a fresh walker while one field changes under it (after
  // `calls_before` of its reads, locating included).
  auto moving_sample = [&](int calls_before, const FakeImage::Field& field, uint64_t value) {
    if (!walker) return;
    uint64_t old = 0;
    const size_t width = std::min<size_t>(field.size, 8);
    if (!image.read(pyflame::core::RemoteAddr(field.addr),
                    std::as_writable_bytes(std::span(&old, 1)).first(width)))
      return;
    const Moment before = walk_now(image);
    write_field(field, value);
    const Moment after = walk_now(image);
    write_field(field, old);
    MovingImage moving(image, calls_before, [&] { write_field(field, value); });
    std::unique_ptr<pyflame::core::Interpreter> moving_walker;
    try {
      moving_walker = pyflame::versions::make_layout_interpreter(*pyflame_measured_layout(), moving,
                                                                 1, image.symbols());
    } catch (const pyflame::core::Error&) {
      write_field(field, value);
      return;  // refused, as it may be: the change may have landed while locating
    }
    pyflame::core::Snapshot seen;
    // Twice: the second sample starts from the first one's readings.
    for (int i = 0; i < 2; ++i) {
      if (!moving_walker->sample(seen)) continue;
      check(seen);
      for (const auto& t : seen.threads)
        if (!t.torn && !seen_in(t, before) && !seen_in(t, after))
          fail("a stack read while it changed is neither the one before nor the one after",
               std::to_string(t.thread_id) + " " + show(t.frames) + " | before " + show_all(before) + " | after " + show_all(after));
    }
    write_field(field, value);  // the change stays, as in a running target
  };

  int samples = 0;
  while (in.remaining() > 0 && samples < 8) {
    const uint8_t kind = in.take<uint8_t>() % 6;
    if (kind == 0) {
      const uint64_t at = image.base() + in.take<uint32_t>() % image.size();
      const std::string bytes = in.take_string(16);
      image.write(at, std::as_bytes(std::span(bytes)));
    } else if (kind == 4) {
      if (!take_sample()) return 0;
      ++samples;
    } else if (kind == 5) {
      const int calls_before = in.take<uint8_t>() % 32;
      const auto [field, value] = field_write(static_cast<uint8_t>(1 + in.take<uint8_t>() % 3));
      if (!take_sample()) return 0;  // the walker exists, and the image reads
      moving_sample(calls_before, field, value);
      samples += 2;
    } else {
      const auto [field, value] = field_write(kind);
      write_field(field, value);
    }
  }
  take_sample();
  // What was recorded must be writable: the collapsed writer walks it all.
  (void)pyflame::core::write_collapsed(profile);
  return 0;
}

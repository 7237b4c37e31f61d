// Fuzz target: the frame walker of one version (linked with that version's
// layout table) over a fake interpreter image (test/walker/fake_image.h)
// that the input corrupts: wild pointers, cycles, pointers into the middle
// of other objects, huge lengths, wrong type pointers, torn bytes. The image
// starts well-formed so that every corruption lands on a path the walker
// really takes. Whatever the damage, sample() must return (no crash, no
// hang, no sanitizer report), and what it returns must be safe to write:
// bounded stacks, names decoded from str objects valid UTF-8, and the
// collapsed writer must take it all; and the frames the walker keeps from
// its last stacks must equal a whole walk of the same bytes.
//
// Input: three bytes of shape (threads 1-3, stack depth 1-24, distinct
// functions 1-8), then patches until the input ends, each a kind byte:
//   0  raw bytes: u32 image offset, u8 length (<= 16), the bytes
//   1  field = u64 value                      (u16 field index)
//   2  field = address of an object + 8 * i8   (u16 field, u16 object, i8)
//   3  field = special: 0, ~0, 2^40, unmapped, its own address, image end
//   4  take a sample now (the next one reuses the walker's caches)
// Field and object indexes wrap: every value names something.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/profile.h"
#include "core/snapshot.h"
#include "core/utf8.h"
#include "core/writers.h"
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

  int samples = 0;
  while (in.remaining() > 0 && samples < 8) {
    const uint8_t kind = in.take<uint8_t>() % 5;
    if (kind == 0) {
      const uint64_t at = image.base() + in.take<uint32_t>() % image.size();
      const std::string bytes = in.take_string(16);
      image.write(at, std::as_bytes(std::span(bytes)));
    } else if (kind == 4) {
      if (!take_sample()) return 0;
      ++samples;
    } else {
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
      image.write(field.addr, std::as_bytes(std::span(&value, 1)).first(std::min<size_t>(field.size, 8)));
    }
  }
  take_sample();
  // What was recorded must be writable: the collapsed writer walks it all.
  (void)pyflame::core::write_collapsed(profile);
  return 0;
}

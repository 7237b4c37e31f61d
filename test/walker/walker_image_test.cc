// SPDX-License-Identifier: Apache-2.0
// The walker of one version (linked with that version's layout table) over
// fake images built with the same table: a well-formed interpreter reads
// back exactly, and each kind of damage gives <unknown> frames, a truncated
// stack or a refused sample, never a wrong frame. Exit status: failures.
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/sampling/snapshot.h"
#include "test/walker/fake_image.h"

namespace {

using pyflame::core::Snapshot;
using pyflame::test::FakeFrame;
using pyflame::test::FakeImage;
using pyflame::test::FakeLine;
using pyflame::test::FakeThread;

const pyflame_layout& L() { return *pyflame_measured_layout(); }

int failures = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "FAIL %s:%d: %s [%s]\n", __FILE__, __LINE__, #cond, name); \
      ++failures;                                                                    \
    }                                                                                \
  } while (0)

// Each frame's instruction is past its line table's first entry, on a line
// that is neither co_firstlineno nor the first entry's (the lines the
// frames are on: 35, 24, 12; 9). Where the version has co_qualname, it
// differs from co_name but for `main`.
std::vector<FakeThread> two_threads() {
  return {{0x1111, 101,
           {{"leaf", "app/leaf.py", 30, "Reader.leaf", {{0, 31}, {6, 32}, {20, 35}}, 22},
            {"middle", "app/mid.py", 20, "outer.<locals>.middle", {{0, 21}, {10, 24}, {40, 26}}, 12},
            {"main", "app/main.py", 10, "", {{0, 11}, {4, 12}}, 4}}},
          {0x2222, 102, {{"worker", "app/worker.py", 5, "Pool.worker", {{0, 6}, {2, 7}, {4, 9}}, 6}}}};
}

std::unique_ptr<pyflame::core::Interpreter> walker(const FakeImage& image) {
  return pyflame::versions::make_layout_interpreter(L(), image, 4242, image.symbols());
}

// The address of the n-th object of `kind`, in allocation order.
uint64_t nth(const FakeImage& image, const char* kind, size_t n) {
  for (const auto& o : image.objects())
    if (std::string(o.kind) == kind && n-- == 0) return o.addr;
  return 0;
}

// The field of `object` at `offset` (from the layout), as an address.
template <typename M>
uint64_t field(uint64_t object, const M& member) {
  return pyflame::versions::address_of(pyflame::core::RemoteAddr(object), member).value();
}

// `f` is the frame of `want` (its name, its qualname where the version has
// co_qualname, else none, and its file), on `line`.
void check_frame(const pyflame::core::Frame& f, const FakeFrame& want, int line, const char* name) {
  CHECK(f.function == want.function);
  CHECK(f.filename == want.filename);
  if (pyflame::versions::present(L().code_qualname)) {
    CHECK(f.qualname == (want.qualname.empty() ? want.function : want.qualname));
  } else {
    CHECK(!f.qualname);
  }
  CHECK(f.line == line);
  if (f.line != line)
    std::fprintf(stderr, "  %s: line %d, expected %d\n", want.function.c_str(), f.line.value_or(-1),
                 line);
}

void well_formed() {
  const char* name = "well-formed image reads back exactly, twice";
  const std::vector<FakeThread> spec = two_threads();
  FakeImage image(L(), spec);
  auto interp = walker(image);
  for (int round = 0; round < 2; ++round) {
    Snapshot s;
    CHECK(interp->sample(s));
    CHECK(s.threads.size() == 2);
    if (s.threads.size() != 2) return;
    const auto& t = s.threads[0];
    CHECK(t.thread_id == 0x1111);
    if (pyflame::versions::present(L().tstate_native_thread_id)) CHECK(t.native_id == 101);
    CHECK(t.frames.size() == 3);
    CHECK(!t.truncated);
    CHECK(!t.torn && !s.threads[1].torn);
    if (t.frames.size() == 3) {
      check_frame(t.frames[0], spec[0].frames[0], 35, name);
      check_frame(t.frames[1], spec[0].frames[1], 24, name);
      check_frame(t.frames[2], spec[0].frames[2], 12, name);
    }
    CHECK(s.threads[1].thread_id == 0x2222);
    CHECK(s.threads[1].frames.size() == 1);
    if (s.threads[1].frames.size() == 1) check_frame(s.threads[1].frames[0], spec[1].frames[0], 9, name);
    // The first thread holds the GIL (the image's default), the other not.
    CHECK(s.threads[0].holds_gil == std::optional<bool>(true));
    CHECK(s.threads[1].holds_gil == std::optional<bool>(false));
  }
}

// The GIL holder in each version's shape (see FakeImage): the first
// thread, the second, or none (where 3.12+ keeps a last holder).
void gil_holder() {
  const std::optional<size_t> holders[] = {0, 1, std::nullopt};
  for (const std::optional<size_t>& holder : holders) {
    const char* name = !holder ? "no thread holds the GIL"
                       : *holder == 0 ? "the first thread holds the GIL"
                                      : "the second thread holds the GIL";
    FakeImage image(L(), two_threads(), holder);
    auto interp = walker(image);
    Snapshot s;
    CHECK(interp->sample(s));
    CHECK(s.threads.size() == 2);
    for (size_t i = 0; i < s.threads.size(); ++i)
      CHECK(s.threads[i].holds_gil == std::optional<bool>(holder == i));
  }
}

void gil_unknown() {
  const char* name = "2.7, 3.6: without _PyThreadState_Current the GIL holder is unknown";
  if (pyflame::versions::present(L().runtime_interpreters_head)) return;
  FakeImage image(L(), two_threads());
  pyflame::versions::TargetSymbols symbols = image.symbols();
  symbols.tstate_current = pyflame::core::RemoteAddr();
  auto interp = pyflame::versions::make_layout_interpreter(L(), image, 4242, symbols);
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 2);
  for (const auto& t : s.threads) CHECK(!t.holds_gil);
}

// A free-threaded build runs without a GIL until something turns it on
// (enabled 0): no thread holds it or lacks it, whatever locked says.
void gil_disabled() {
  const char* name = "free-threaded: no GIL, holder unknown";
  if (!pyflame::versions::present(L().gil_enabled)) return;
  FakeImage image(L(), two_threads(), 0);
  for (const FakeImage::Object& object : image.objects())
    if (std::string_view(object.kind) == "gil") image.write_member(object.addr, L().gil_enabled, 0);
  auto interp = walker(image);
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 2);
  for (const auto& t : s.threads) CHECK(!t.holds_gil);
}

// 2.7, 3.6 without .symtab: the interpreter list's head is found by
// scanning writable data for a word that points at an interpreter state,
// among words that point at thread states, frames and strings; a state
// outside the writable mappings given is never taken.
void interp_head_by_scan() {
  const char* name = "2.7, 3.6: no interp_head symbol: the list head found by scanning";
  if (pyflame::versions::present(L().runtime_interpreters_head)) return;
  FakeImage image(L(), two_threads());
  pyflame::versions::TargetSymbols symbols = image.symbols();
  symbols.interp_head = pyflame::core::RemoteAddr();
  symbols.scan_ranges = {{pyflame::core::RemoteAddr(image.base()), image.size()}};
  symbols.scan_targets = {{image.base(), image.base() + image.size()}};
  auto interp = pyflame::versions::make_layout_interpreter(L(), image, 4242, symbols);
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 2);
  if (s.threads.size() == 2) CHECK(s.threads[0].frames.size() == 3);

  name = "2.7, 3.6: a state outside the writable mappings is not taken";
  symbols.scan_targets = {{FakeImage::kUnmapped, FakeImage::kUnmapped + 4096}};
  bool refused = false;
  try {
    pyflame::versions::make_layout_interpreter(L(), image, 4242, symbols);
  } catch (const pyflame::core::Error& e) {
    refused = e.code() == pyflame::core::ExitCode::kNotPython;
  }
  CHECK(refused);
}

// Line tables with entries far apart (increments split over several
// entries in every format), and, where the format has them, lines going
// back: each frame on the line it was encoded with.
void line_tables() {
  const char* name = "multi-entry line tables read back the line of the frame's instruction";
  const std::vector<FakeLine> far = {{0, 101}, {8, 400}, {300, 401}, {600, 1000}};
  const std::vector<FakeLine> back = {{0, 300}, {4, 10}, {12, 11}, {20, 9}};
  struct Case {
    FakeFrame frame;
    int line;
  };
  std::vector<Case> cases = {{{"far_end", "far.py", 100, "", far, 610}, 1000},
                             {{"far_before", "far.py", 100, "", far, 298}, 400},
                             {{"far_at", "far.py", 100, "", far, 300}, 401},
                             {{"far_second", "far.py", 100, "", far, 8}, 400}};
  if (L().line_table_model != PYFLAME_LNOTAB_UNSIGNED) {  // 2.7's lines only increase
    cases.push_back({{"back_far", "back.py", 5, "", back, 4}, 10});
    cases.push_back({{"back_up", "back.py", 5, "", back, 14}, 11});
    cases.push_back({{"back_end", "back.py", 5, "", back, 22}, 9});
  }
  FakeThread thread{0x3333, 103, {}};
  for (const Case& c : cases) thread.frames.push_back(c.frame);
  FakeImage image(L(), {thread});
  auto interp = walker(image);
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 1 && s.threads[0].frames.size() == cases.size());
  if (s.threads.size() != 1 || s.threads[0].frames.size() != cases.size()) return;
  for (size_t i = 0; i < cases.size(); ++i)
    check_frame(s.threads[0].frames[i], cases[i].frame, cases[i].line, name);
}

void deep_recursion() {
  const char* name = "deep recursion of one code object";
  FakeThread t{7, 8, {}};
  for (int i = 0; i < 500; ++i) t.frames.push_back({"recurse", "deep.py", 3});
  FakeImage image(L(), {t});
  auto interp = walker(image);  // the frames' strings live in it
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 1 && s.threads[0].frames.size() == 500);
  // No line table given: the code is all on co_firstlineno.
  if (!s.threads.empty() && !s.threads[0].frames.empty()) CHECK(s.threads[0].frames[0].line == 3);
}

// The pointer from the innermost frame to its caller, and its code pointer.
const pyflame::versions::WordMember& back_offset() {
  return L().frame_model == PYFLAME_FRAME_OBJECTS ? L().frame_back : L().iframe_previous;
}
const pyflame::versions::WordMember& code_offset() {
  return L().frame_model == PYFLAME_FRAME_OBJECTS ? L().frame_code : L().iframe_code;
}
// The innermost frame of the first thread: the last "frame" object of it.
uint64_t innermost_frame(const FakeImage& image) {
  // Frame objects are allocated outermost first for both models.
  return nth(image, "frame", 2);
}

void frame_cycle() {
  const char* name = "a frame cycle ends the stack as truncated";
  FakeImage image(L(), two_threads());
  const uint64_t inner = innermost_frame(image);
  image.write_u64(field(nth(image, "frame", 0), back_offset()), inner);  // outermost -> innermost
  auto interp = walker(image);  // the frames' strings live in it
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(!s.threads.empty() && s.threads[0].truncated && s.threads[0].torn);
  if (!s.threads.empty()) CHECK(s.threads[0].frames.size() < 100);
}

// The first thread's innermost frame reads as <unknown>, and only it; the
// thread is torn (not shown).
void expect_leaf_unknown(const FakeImage& image, const char* name) {
  auto interp = walker(image);  // the frames' strings live in it
  Snapshot s;
  CHECK(interp->sample(s));
  if (s.threads.empty() || s.threads[0].frames.size() != 3) {
    CHECK(false);
    return;
  }
  CHECK(s.threads[0].frames[0].function == "<unknown>");
  CHECK(s.threads[0].frames[1].function == "middle");
  CHECK(s.threads[0].torn);  // read, but never shown: dropped and counted
}

void wild_code_pointer() {
  const char* name = "a wild code pointer is <unknown>, the rest of the stack intact";
  FakeImage image(L(), two_threads());
  image.write_u64(field(innermost_frame(image), code_offset()), FakeImage::kUnmapped);
  expect_leaf_unknown(image, name);
}

void wrong_type() {
  const char* name = "an object of the wrong type is <unknown>";
  FakeImage image(L(), two_threads());
  // The leaf's code object claims to be a frame.
  image.write_u64(field(nth(image, "code", 0), L().ob_type), 0x2000);
  expect_leaf_unknown(image, name);
}

void huge_string() {
  const char* name = "a huge string length is refused";
  FakeImage image(L(), two_threads());
  const uint64_t str = nth(image, L().string_model == PYFLAME_STRINGS_BYTES ? "bytes" : "str", 0);
  const auto& length = L().string_model == PYFLAME_STRINGS_BYTES ? L().ob_size : L().unicode_length;
  image.write_member(str, length, uint64_t{1} << 40);
  expect_leaf_unknown(image, name);
}

void reused_code_address() {
  const char* name = "a code object replaced at the same address is read anew";
  FakeImage image(L(), two_threads());
  auto interp = walker(image);
  Snapshot s;
  CHECK(interp->sample(s));
  // "Free" the leaf's code object and put another one there: its name now
  // points at the worker's name string.
  const uint64_t leaf_code = nth(image, "code", 0), worker_code = nth(image, "code", 3);
  uint64_t worker_name = 0;
  image.read(pyflame::core::RemoteAddr(field(worker_code, L().code_name)),
             std::as_writable_bytes(std::span(&worker_name, 1)));
  image.write_u64(field(leaf_code, L().code_name), worker_name);
  if (pyflame::versions::present(L().code_qualname)) image.write_u64(field(leaf_code, L().code_qualname), worker_name);
  CHECK(interp->sample(s));
  CHECK(!s.threads.empty() && !s.threads[0].frames.empty() && s.threads[0].frames[0].function == "worker");
}

// Points the first thread's "current frame" at `frame`.
void set_current_frame(FakeImage& image, uint64_t frame) {
  const uint64_t tstate = nth(image, "tstate", 0);
  if (L().frame_model == PYFLAME_FRAME_OBJECTS) {
    image.write_u64(field(tstate, L().tstate_frame), frame);
  } else if (pyflame::versions::present(L().tstate_current_frame)) {
    image.write_u64(field(tstate, L().tstate_current_frame), frame);
  } else {
    image.write_u64(field(nth(image, "cframe", 0), L().cframe_current_frame), frame);
  }
}

std::vector<std::string> functions(const Snapshot& s) {
  std::vector<std::string> out;
  if (!s.threads.empty())
    for (const auto& f : s.threads[0].frames) out.emplace_back(f.function);
  return out;
}

// Makes `frame` run `code` (from its first instruction, on 3.11+).
void run_code(FakeImage& image, uint64_t frame, uint64_t code) {
  image.write_u64(field(frame, code_offset()), code);
  if (L().frame_model != PYFLAME_FRAME_OBJECTS)
    image.write_u64(field(frame, L().iframe_instr), field(code, L().code_adaptive));
}

void stack_changes() {
  const char* name = "a stack that changes between samples reads right each time";
  FakeImage image(L(), two_threads());
  auto interp = walker(image);
  Snapshot s;  // the same snapshot throughout: the walker keeps what it can
  using V = std::vector<std::string>;
  CHECK(interp->sample(s) && functions(s) == (V{"leaf", "middle", "main"}));
  // Returns from the leaf, then calls it again.
  set_current_frame(image, nth(image, "frame", 1));
  CHECK(interp->sample(s) && functions(s) == (V{"middle", "main"}));
  set_current_frame(image, innermost_frame(image));
  CHECK(interp->sample(s) && functions(s) == (V{"leaf", "middle", "main"}));
  // The leaf now runs other code; then the middle frame does too.
  run_code(image, innermost_frame(image), nth(image, "code", 3));
  CHECK(interp->sample(s) && functions(s) == (V{"worker", "middle", "main"}));
  run_code(image, nth(image, "frame", 1), nth(image, "code", 0));
  CHECK(interp->sample(s) && functions(s) == (V{"worker", "leaf", "main"}));
  // A fresh snapshot gets whole stacks too.
  Snapshot fresh;
  CHECK(interp->sample(fresh) && functions(fresh) == (V{"worker", "leaf", "main"}));
  CHECK(fresh.threads.size() == 2 && fresh.threads[1].frames.size() == 1);
}

void frame_in_transition() {
  const char* name = "3.11+: a frame whose instruction pointer is past its code is left out";
  if (L().frame_model == PYFLAME_FRAME_OBJECTS) return;
  FakeImage image(L(), two_threads());
  const uint64_t leaf = innermost_frame(image);
  image.write_u64(field(leaf, L().iframe_instr), field(nth(image, "code", 0), L().code_adaptive) + 4096);
  auto interp = walker(image);
  Snapshot s;
  CHECK(interp->sample(s) && functions(s) == (std::vector<std::string>{"middle", "main"}));
  CHECK(!s.threads.empty() && !s.threads[0].truncated);
}

// 3.12, 3.13: an innermost frame already popped (stacktop 0) is no frame
// of the thread: its caller has gone on. The stack is torn, never shown
// with the popped frame under a caller past its call.
void popped_innermost() {
  const char* name = "3.12, 3.13: a popped innermost frame (stacktop 0) makes the stack torn";
  if (!pyflame::versions::present(L().iframe_stacktop)) return;
  FakeImage image(L(), two_threads());
  {
    auto interp = walker(image);
    Snapshot s;
    CHECK(interp->sample(s) && !s.threads.empty() && !s.threads[0].torn);
  }
  image.write_member(innermost_frame(image), L().iframe_stacktop, 0);
  auto interp = walker(image);
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(!s.threads.empty() && s.threads[0].torn);
  if (!s.threads.empty())
    for (const auto& f : s.threads[0].frames) CHECK(f.function != "leaf");
}

// 3.12, 3.13: a caller's stacktop is its locals plus its stack depth while
// its callee runs. Below its locals (0 in a popped frame, -1 once its
// callee has returned) it is past its call: the callee was read before
// and the caller after, and the stack is torn. A caller without locals
// (module code) may hold 0, and one through C code -1: those are shown.
void caller_past_call() {
  const char* name = "3.12, 3.13: a caller past its call (stacktop below its locals) makes the stack torn";
  if (!pyflame::versions::present(L().iframe_stacktop)) return;
  auto set_stacktop = [&](FakeImage& image, uint64_t value) {
    image.write_member(nth(image, "frame", 1), L().iframe_stacktop, value);
  };
  auto torn = [&](FakeImage& image) {
    auto interp = walker(image);
    Snapshot s;
    return interp->sample(s) && !s.threads.empty() && s.threads[0].torn;
  };
  for (uint64_t stacktop : {uint64_t{0}, ~uint64_t{0}}) {
    FakeImage image(L(), two_threads());
    set_stacktop(image, stacktop);
    CHECK(torn(image));
  }
  FakeImage image(L(), two_threads());
  set_stacktop(image, 0);
  image.write_member(nth(image, "code", 1), L().code_nlocalsplus, 0);
  {
    auto interp = walker(image);
    Snapshot s;
    CHECK(interp->sample(s) && !s.threads.empty() && !s.threads[0].torn);
    CHECK(functions(s) == (std::vector<std::string>{"leaf", "middle", "main"}));
  }
  std::vector<FakeThread> through_c = two_threads();
  through_c[0].frames[0].called_from_c = true;
  FakeImage shimmed(L(), through_c);
  auto interp = walker(shimmed);
  Snapshot s;
  CHECK(interp->sample(s) && !s.threads.empty() && !s.threads[0].torn);
  CHECK(functions(s) == (std::vector<std::string>{"leaf", "middle", "main"}));
}

// 3.11: a caller that pushed its callee in the same eval-loop call stands
// at the instruction that pushed it (a call). One read elsewhere (catcher
// on its `except` line under the thrower it called) went on past its call
// after its callee was read: the stack is torn. A callee entered from C
// code (an entry frame) may have been called from any instruction: shown.
void caller_not_at_call() {
  const char* name = "3.11: a caller not at a call instruction makes the stack torn";
  if (L().pushes_frame == nullptr) return;
  auto torn = [&](const std::vector<FakeThread>& threads) {
    FakeImage image(L(), threads);
    // The caller's instruction moves off its call, to a CACHE unit.
    image.write_member(nth(image, "frame", 1), L().iframe_instr,
                       field(nth(image, "code", 1), L().code_adaptive) + 2);
    auto interp = walker(image);
    Snapshot s;
    return interp->sample(s) && !s.threads.empty() && s.threads[0].torn;
  };
  CHECK(torn(two_threads()));
  std::vector<FakeThread> through_c = two_threads();
  through_c[0].frames[0].called_from_c = true;
  CHECK(!torn(through_c));
}

void thread_cycle() {
  const char* name = "a cycle in the thread list fails the sample";
  FakeImage image(L(), two_threads());
  const uint64_t second = nth(image, "tstate", 1);
  image.write_u64(field(second, L().tstate_next), nth(image, "tstate", 0));
  auto interp = walker(image);
  Snapshot s;
  CHECK(!interp->sample(s));
}

void debug_offsets_mismatch() {
  const char* name = "3.13+: a _Py_DebugOffsets table that differs is refused";
  if (L().debug_checks == nullptr || L().debug_check_count == 0) return;
  FakeImage image(L(), two_threads());
  image.write_u64(image.symbols().runtime.value() + static_cast<uint64_t>(L().debug_checks[0].position),
                  L().debug_checks[0].expected + 8);
  bool refused = false;
  try {
    walker(image);
  } catch (const pyflame::core::Error& e) {
    refused = e.code() == pyflame::core::ExitCode::kWrongVersion;
  }
  CHECK(refused);
}

// The table's own invariants, for this version's measured layout: every
// member is named, an integer is 1, 2, 4 or 8 bytes wide, and asking for a
// member this version lacks throws instead of reading 0.
void member_table() {
  const char* name = "every member is named and sized; an absent one cannot be read";
  const pyflame_layout& l = L();
  bool named = true, sized = true, absent_throws = true;
  std::vector<std::byte> bytes(4096);
  auto check = [&](const auto& member) {
    named = named && member.name != nullptr && member.name[0] != '\0';
    if (!pyflame::versions::present(member)) {
      try {
        (void)pyflame::versions::offset_of(member);
        absent_throws = false;
      } catch (const std::logic_error&) {
      }
    }
  };
  auto check_integer = [&](const pyflame::versions::IntegerMember& member) {
    check(member);
    if (pyflame::versions::present(member)) {
      const int32_t size = member.size;
      sized = sized && (size == 1 || size == 2 || size == 4 || size == 8);
      (void)pyflame::versions::read(bytes, member);  // in range: does not throw
    }
  };
#define CHECK_MEMBER_WORD(m) check(l.m);
#define CHECK_MEMBER_PLACE(m) check(l.m);
#define CHECK_MEMBER_INTEGER(m) check_integer(l.m);
#define CHECK_MEMBER(m, kind) CHECK_MEMBER_##kind(m)
  PYFLAME_LAYOUT_MEMBERS(CHECK_MEMBER)
#undef CHECK_MEMBER
#undef CHECK_MEMBER_WORD
#undef CHECK_MEMBER_PLACE
#undef CHECK_MEMBER_INTEGER
  CHECK(named);
  CHECK(sized);
  CHECK(absent_throws);
}

}  // namespace

// dump --locals: each frame's variables, of every kind, read back exactly
// (3.14+: None's reference tagged); a value whose type cannot be read is
// <unreadable>; without set_locals() nothing is read.
void locals_read() {
  const char* name = "locals read back exactly";
  using pyflame::core::LocalKind;
  using pyflame::test::FakeValue;
  std::vector<FakeThread> spec = two_threads();
  spec[0].frames[0].locals = {{"self", LocalKind::kArg, {FakeValue::kNone}},
                              {"n", LocalKind::kArg, {FakeValue::kInt, -1099511627776}},
                              {"s", LocalKind::kLocal, {FakeValue::kText, 0, "it's"}},
                              {"big", LocalKind::kLocal, {FakeValue::kInt, 123456789012345}},
                              {"zero", LocalKind::kLocal, {FakeValue::kInt, 0}},
                              {"items", LocalKind::kCell, {FakeValue::kList, 3}}};
  spec[0].frames[1].locals = {{"flag", LocalKind::kArg, {FakeValue::kTrue}},
                              {"items", LocalKind::kFree, {FakeValue::kList, 2}}};
  FakeImage image(L(), spec);
  {
    auto interp = walker(image);
    Snapshot s;
    CHECK(interp->sample(s));
    for (const auto& t : s.threads)
      for (const auto& f : t.frames) CHECK(f.locals == nullptr);
  }
  auto interp = walker(image);
  interp->set_locals(true);
  struct Want {
    const char* name;
    LocalKind kind;
    const char* type;  // nullptr: unreadable
    const char* repr;
  };
  auto check_locals = [&](const pyflame::core::Frame& f, const std::vector<Want>& want) {
    CHECK(f.locals != nullptr);
    if (f.locals == nullptr) return;
    CHECK(!f.locals->unreadable && !f.locals->truncated);
    CHECK(f.locals->values.size() == want.size());
    for (size_t i = 0; i < std::min(want.size(), f.locals->values.size()); ++i) {
      const auto& got = f.locals->values[i];
      const bool same = got.name == want[i].name && got.kind == want[i].kind &&
                        got.type == (want[i].type ? std::optional<std::string>(want[i].type) : std::nullopt) &&
                        got.repr == want[i].repr;
      CHECK(same);
      if (!same)
        std::fprintf(stderr, "  %s: %s %s = %s, expected %s %s\n", want[i].name,
                     got.type.value_or("(null)").c_str(), got.name.c_str(), got.repr.c_str(),
                     want[i].type ? want[i].type : "(null)", want[i].repr);
    }
  };
  Snapshot s;
  CHECK(interp->sample(s));
  CHECK(s.threads.size() == 2 && s.threads[0].frames.size() == 3);
  if (s.threads.size() != 2 || s.threads[0].frames.size() != 3) return;
  check_locals(s.threads[0].frames[0], {{"self", LocalKind::kArg, "NoneType", "None"},
                                        {"n", LocalKind::kArg, "int", "-1099511627776"},
                                        {"s", LocalKind::kLocal, "str", "\"it's\""},
                                        {"big", LocalKind::kLocal, "int", "123456789012345"},
                                        {"zero", LocalKind::kLocal, "int", "0"},
                                        {"items", LocalKind::kCell, "list", "<list len=3>"}});
  check_locals(s.threads[0].frames[1], {{"flag", LocalKind::kArg, "bool", "True"},
                                        {"items", LocalKind::kFree, "list", "<list len=2>"}});
  check_locals(s.threads[0].frames[2], {});
  check_locals(s.threads[1].frames[0], {});

  // A value whose type is not readable: <unreadable>, with no type.
  image.write_u64(field(nth(image, "list", 1), L().ob_type), FakeImage::kUnmapped);
  Snapshot again;
  CHECK(interp->sample(again));
  if (again.threads.size() == 2 && again.threads[0].frames.size() == 3)
    check_locals(again.threads[0].frames[1], {{"flag", LocalKind::kArg, "bool", "True"},
                                              {"items", LocalKind::kFree, nullptr, "<unreadable>"}});
}

int main() {
  member_table();
  well_formed();
  locals_read();
  gil_holder();
  gil_unknown();
  gil_disabled();
  interp_head_by_scan();
  line_tables();
  deep_recursion();
  frame_cycle();
  wild_code_pointer();
  wrong_type();
  huge_string();
  reused_code_address();
  stack_changes();
  frame_in_transition();
  popped_innermost();
  caller_past_call();
  caller_not_at_call();
  thread_cycle();
  debug_offsets_mismatch();
  std::printf("walker image test, Python %s layout: %s\n", L().py_version,
              failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}

// SPDX-License-Identifier: Apache-2.0
// The merge of native and Python frames (--native) and the rules that say
// which C frames are the eval loop's or hidden, on stacks made here.
#include <catch2/catch.hpp>
#include <deque>
#include <string>
#include <vector>

#include "core/native/merge.h"

using namespace pyflame::core;

namespace {

constexpr const char* kLibpython = "/usr/lib/libpython3.10.so.1.0";

// Native stacks built by name, innermost first, classified as the
// unwinder classifies them.
struct NativeStacks {
  NativeFrameRules rules{{"_PyEval_EvalFrameDefault"}, kLibpython};
  std::deque<NativeLocation> locations;
  NativeStack stack;

  NativeStacks& frame(const std::string& function, const std::string& library,
                      uint64_t sp = 0, bool inlined = false) {
    NativeLocation& loc = locations.emplace_back();
    loc.function = function;
    loc.library = library;
    loc.role = rules.classify(function, library);
    loc.in_interpreter = library == kLibpython;
    loc.inlined = inlined;
    loc.key = locations.size();
    stack.frames.push_back(&loc);
    stack.stack_pointers.push_back(sp);
    return *this;
  }
};

Frame py(const char* name) { return Frame{name, std::nullopt, "/srv/app.py", 1}; }

std::vector<std::string> names(const std::vector<Frame>& frames) {
  std::vector<std::string> out;
  for (const Frame& f : frames) out.emplace_back(f.function);
  return out;
}

}  // namespace

TEST_CASE("the rules look through compiler clones and keep the GIL wait") {
  NativeFrameRules rules{{"_PyEval_EvalFrameDefault"}, kLibpython};
  CHECK(rules.classify("_PyEval_EvalFrameDefault.cold", kLibpython) == NativeRole::kEvalLoop);
  CHECK(rules.classify("_PyEval_EvalFrameDefault", "/srv/ext.so") == NativeRole::kShown);
  CHECK(rules.classify("_PyFunction_Vectorcall", kLibpython) == NativeRole::kInternal);
  CHECK(rules.classify("take_gil", kLibpython) == NativeRole::kShown);
  CHECK(rules.classify("PyEval_RestoreThread", kLibpython) == NativeRole::kShown);
  CHECK(rules.classify("main_loop", kLibpython) == NativeRole::kShown);
  CHECK(rules.classify("", kLibpython) == NativeRole::kInternal);  // stripped, unnamed
  CHECK(rules.classify("start_thread", "/lib/libc.so.6") == NativeRole::kInternal);
  CHECK(base_function_name("f.constprop.0") == "f");
}

TEST_CASE("each eval-loop frame takes its call's Python frames (by name)") {
  NativeStacks n;
  n.frame("ext_spin", "/srv/ext.so")
      .frame("_PyEval_EvalFrameDefault", kLibpython)
      .frame("_PyFunction_Vectorcall", kLibpython)
      .frame("ext_call_back", "/srv/ext.so")
      .frame("_PyEval_EvalFrameDefault", kLibpython)
      .frame("_PyEval_EvalFrameDefault", kLibpython)
      .frame("Py_RunMain", kLibpython)
      .frame("__libc_start_main", "/lib/libc.so.6");
  n.stack.complete = true;
  std::vector<Frame> out;
  const std::vector<Frame> python{py("py_callback"), py("outer"), py("<module>")};
  CHECK(merge_native(python, {1, 1, 1}, {}, n.stack, false, out) == MergeOutcome::kMerged);
  CHECK(names(out) == std::vector<std::string>{"ext_spin", "py_callback", "ext_call_back", "outer",
                                               "<module>"});
  CHECK(out[0].kind == FrameKind::kNative);
  CHECK(out[1].kind == FrameKind::kPython);
  CHECK(merge_native(python, {1, 1, 1}, {}, n.stack, true, out) == MergeOutcome::kMerged);
  CHECK(names(out) == std::vector<std::string>{"ext_spin", "py_callback", "_PyFunction_Vectorcall",
                                               "ext_call_back", "outer", "<module>", "Py_RunMain",
                                               "__libc_start_main"});
}

TEST_CASE("eval-loop calls and Python calls that disagree give the Python frames alone") {
  NativeStacks n;
  n.frame("ext_spin", "/srv/ext.so").frame("_PyEval_EvalFrameDefault", kLibpython);
  n.stack.complete = true;
  std::vector<Frame> out;
  const std::vector<Frame> python{py("a"), py("b")};
  CHECK(merge_native(python, {1, 1}, {}, n.stack, false, out) == MergeOutcome::kMismatch);
  CHECK(names(out) == std::vector<std::string>{"a", "b"});
  // Calls that do not add up to the frames.
  CHECK(merge_native(python, {1}, {}, n.stack, false, out) == MergeOutcome::kMismatch);
}

TEST_CASE("an unwind cut short keeps what it reached, the rest outside a marker") {
  NativeStacks n;
  n.frame("ext_spin", "/srv/ext.so").frame("_PyEval_EvalFrameDefault", kLibpython);
  n.stack.complete = false;
  std::vector<Frame> out;
  CHECK(merge_native({py("a"), py("b")}, {1, 1}, {}, n.stack, false, out) == MergeOutcome::kCutShort);
  CHECK(names(out) == std::vector<std::string>{"ext_spin", "a", "[native stack not unwound further]",
                                               "b"});
}

TEST_CASE("3.12+: the frame whose stack holds the entry frame is the eval loop, named or not") {
  NativeStacks n;
  n.frame("ext_spin", "/srv/ext.so", 0x1000)
      .frame("", kLibpython, 0x1100)  // the stripped eval loop: holds anchor 0x1180
      .frame("ext_call_back", "/srv/ext.so", 0x1400)
      .frame("", kLibpython, 0x1500)  // holds 0x1580
      .frame("", kLibpython, 0x1800);
  n.stack.complete = true;
  std::vector<Frame> out;
  CHECK(merge_native({py("py_callback"), py("outer"), py("<module>")}, {1, 2}, {0x1180, 0x1580},
                     n.stack, false, out) == MergeOutcome::kMerged);
  CHECK(names(out) == std::vector<std::string>{"ext_spin", "py_callback", "ext_call_back", "outer",
                                               "<module>"});
  // An entry frame in a frame outside the interpreter: a wrong unwind.
  CHECK(merge_native({py("py_callback"), py("outer"), py("<module>")}, {1, 2}, {0x1080, 0x1580},
                     n.stack, false, out) == MergeOutcome::kMismatch);
}

TEST_CASE("functions inlined into the eval loop go with it; elsewhere they are frames") {
  NativeStacks n;
  n.frame("inlined_spin", "/srv/ext.so", 0x1000, true)
      .frame("spin_in", "/srv/ext.so", 0x1000)
      .frame("_PyObject_VectorcallTstate", kLibpython, 0x1100, true)
      .frame("do_call", kLibpython, 0x1100, true)
      .frame("_PyEval_EvalFrameDefault", kLibpython, 0x1100);
  n.stack.complete = true;
  std::vector<Frame> out;
  CHECK(merge_native({py("f")}, {1}, {}, n.stack, true, out) == MergeOutcome::kMerged);
  CHECK(names(out) == std::vector<std::string>{"inlined_spin", "spin_in", "f"});
  CHECK(out[0].inlined);
  CHECK_FALSE(out[1].inlined);
}

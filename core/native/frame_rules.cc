// SPDX-License-Identifier: Apache-2.0
#include "core/native/frame_rules.h"

#include <algorithm>
#include <array>

namespace pyflame::core {
namespace {

// Functions of the interpreter that only carry a call from one Python or C
// function to another, or start the interpreter: no user reads anything in
// them. Prefixes; matched only in the interpreter's own file, where a C
// extension cannot put a function.
constexpr std::array kInterpreterCallMachinery{
    // the eval loop's entries and the function call protocol
    // (not PyEval_RestoreThread and take_gil: a wait for the GIL is news)
    std::string_view("_PyEval_EvalFrame"), std::string_view("_PyEval_EvalCode"),
    std::string_view("_PyEval_Vector"), std::string_view("PyEval_EvalFrame"),
    std::string_view("PyEval_EvalCode"), std::string_view("PyEval_CallObject"),
    std::string_view("PyEval_CallFunction"), std::string_view("PyEval_CallMethod"),
    std::string_view("_PyFunction_"),
    std::string_view("PyFunction_"), std::string_view("_PyObject_Call"),
    std::string_view("PyObject_Call"), std::string_view("_PyObject_Vectorcall"),
    std::string_view("PyObject_Vectorcall"), std::string_view("_PyObject_FastCall"),
    std::string_view("_PyObject_MakeTpCall"), std::string_view("_PyObject_VectorcallTstate"),
    std::string_view("PyVectorcall_Call"), std::string_view("_PyVectorcall_Call"),
    std::string_view("_PyCFunction_FastCall"), std::string_view("PyCFunction_Call"),
    std::string_view("_PyMethodDef_Raw"), std::string_view("_PyMethodDescr_"),
    std::string_view("cfunction_call"), std::string_view("cfunction_vectorcall"),
    std::string_view("method_vectorcall"), std::string_view("vectorcall_"),
    std::string_view("function_code_fastcall"), std::string_view("function_call"),
    std::string_view("fast_function"), std::string_view("call_function"),
    std::string_view("do_call_core"), std::string_view("ext_do_call"),
    std::string_view("instancemethod_call"), std::string_view("method_call"),
    std::string_view("slot_tp_call"), std::string_view("object_vacall"),
    std::string_view("_Py_call_instrumentation"), std::string_view("call_trampoline"),
    // starting the interpreter and running the main module
    std::string_view("main"), std::string_view("Py_BytesMain"), std::string_view("Py_RunMain"),
    std::string_view("Py_Main"), std::string_view("pymain_"), std::string_view("_PyRun_"),
    std::string_view("PyRun_"), std::string_view("pyrun_"), std::string_view("_Py_UnixMain"),
    std::string_view("run_mod"), std::string_view("run_eval_code_obj"),
    std::string_view("run_pyc_file"), std::string_view("builtin_exec"),
    // starting a thread
    std::string_view("thread_run"), std::string_view("t_bootstrap"),
    std::string_view("pythread_wrapper"),
};

// Where every thread of every program starts, in libc or the executable
// (an --enable-shared build's `main` is in the executable, not libpython).
constexpr std::array kThreadStarts{
    std::string_view("_start"), std::string_view("main"), std::string_view("__libc_start_main"),
    std::string_view("__libc_start_call_main"), std::string_view("start_thread"),
    std::string_view("clone"), std::string_view("clone3"), std::string_view("__clone"),
    std::string_view("__clone3"), std::string_view("__clone_internal"),
};

bool exact_or_prefix(std::string_view name, std::string_view pattern) {
  // "main" must not hide "main_loop": short names match whole; prefixes
  // end in '_' or are long enough to be one function family.
  if (pattern == "main") return name == "main";
  return name.substr(0, pattern.size()) == pattern;
}

}  // namespace

std::string_view base_function_name(std::string_view symbol) {
  // GCC's parts and clones: f.cold, f.part.0, f.constprop.0, f.isra.0,
  // f.lto_priv.0; C++ names have no '.'.
  const size_t dot = symbol.find('.');
  return dot == std::string_view::npos || dot == 0 ? symbol : symbol.substr(0, dot);
}

NativeRole NativeFrameRules::classify(std::string_view function, std::string_view library) const {
  const std::string_view name = base_function_name(function);
  if (std::find(kThreadStarts.begin(), kThreadStarts.end(), name) != kThreadStarts.end())
    return NativeRole::kInternal;
  if (library != interpreter_path) return NativeRole::kShown;
  if (name.empty()) return NativeRole::kInternal;
  for (const std::string& eval : eval_loop_functions)
    if (name == eval) return NativeRole::kEvalLoop;
  for (std::string_view pattern : kInterpreterCallMachinery)
    if (exact_or_prefix(name, pattern)) return NativeRole::kInternal;
  return NativeRole::kShown;
}

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
#include "versions/walker/layout_module.h"
#include "versions/walker/member.h"

#include <fmt/format.h>

#include "core/errors.h"
#include "versions/walker/layout_interpreter.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

LayoutModule::LayoutModule(const pyflame_layout& layout)
    : layout_(layout) {
  info_.major = layout.major;
  info_.minor = layout.minor;
  info_.free_threaded = layout.free_threaded == 1;
  // 2.7 runs each frame in PyEval_EvalFrameEx; 3.6+ in the default eval
  // function that PyEval_EvalFrameEx (to 3.8) or _PyEval_EvalFrame calls.
  info_.eval_loop_functions = {layout.major == 2 ? "PyEval_EvalFrameEx" : "_PyEval_EvalFrameDefault"};
  info_.headers_version = layout.py_version;
  info_.layout_fingerprint = layout_fingerprint(layout);
}

std::unique_ptr<core::Interpreter> LayoutModule::locate(const core::TargetImage& image,
                                                        const core::PythonBinary& binary) const {
  const pyflame_layout& l = layout_;
  auto missing = [&](const char* what) {
    return Error(ExitCode::kNotPython,
                 fmt::format("pyflame: {}: {} has no symbol {}; it is not a CPython "
                             "{}.{} interpreter pyflame can read",
                             image.describe(), binary.target_path(), what, l.major, l.minor));
  };
  auto required = [&](const char* name) {
    auto addr = binary.symbol(name);
    if (!addr) throw missing(name);
    return *addr;
  };
  TargetSymbols symbols;
  symbols.code_type = required("PyCode_Type");
  if (l.frame_model == PYFLAME_FRAME_OBJECTS) symbols.frame_type = required("PyFrame_Type");
  const bool py2 = l.string_model == PYFLAME_STRINGS_BYTES;
  symbols.text_type = required(py2 ? "PyString_Type" : "PyUnicode_Type");
  symbols.bytes_type = required(py2 ? "PyString_Type" : "PyBytes_Type");
  // dump --locals: a symbol missing is a type whose objects are shown as
  // <TYPE at 0x...>, never a reason to refuse the target.
  auto optional = [&](const char* name) { return binary.symbol(name).value_or(RemoteAddr()); };
  ValueSymbols& v = symbols.values;
  v.none = optional("_Py_NoneStruct");
  v.true_ = optional("_Py_TrueStruct");
  v.false_ = optional(py2 ? "_Py_ZeroStruct" : "_Py_FalseStruct");
  if (py2) v.int_type = optional("PyInt_Type");
  v.long_type = optional("PyLong_Type");
  v.float_type = optional("PyFloat_Type");
  v.list_type = optional("PyList_Type");
  v.tuple_type = optional("PyTuple_Type");
  v.dict_type = optional("PyDict_Type");
  v.set_type = optional("PySet_Type");
  v.frozenset_type = optional("PyFrozenSet_Type");
  v.cell_type = optional("PyCell_Type");
  symbols.version = binary.version().full;
  symbols.target_path = binary.target_path();
  if (present(l.runtime_interpreters_head)) {
    symbols.runtime = required("_PyRuntime");
  } else {
    symbols.interp_head = binary.symbol("interp_head").value_or(RemoteAddr());
    if (!symbols.interp_head) {
      symbols.scan_ranges = binary.writable_ranges();
      for (const core::Mapping& m : binary.maps())
        if (m.readable && m.writable) symbols.scan_targets.emplace_back(m.start, m.end);
      std::sort(symbols.scan_targets.begin(), symbols.scan_targets.end());
    }
    symbols.tstate_current = binary.symbol("_PyThreadState_Current").value_or(RemoteAddr());
  }
  return make_layout_interpreter(l, image, image.pid(), symbols);
}

std::unique_ptr<core::Interpreter> make_layout_interpreter(const pyflame_layout& layout,
                                                           const core::Memory& target, int pid,
                                                           const TargetSymbols& symbols) {
  return std::make_unique<LayoutInterpreter>(layout, target, pid, symbols);
}

namespace {

// FNV-1a, eight bytes a value.
struct Fingerprint {
  uint64_t hash = 0xcbf29ce484222325ull;
  void add(int64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash ^= (static_cast<uint64_t>(value) >> (8 * i)) & 0xff;
      hash *= 0x100000001b3ull;
    }
  }
  void add(const WordMember& m) { add(m.offset); }
  void add(const PlaceMember& m) { add(m.offset); }
  void add(const IntegerMember& m) {
    add(m.offset);
    add(m.size);
    add(m.is_signed);
  }
  void add(const pyflame_bitfield& b) {
    add(b.byte_offset);
    add(b.mask);
    add(b.shift);
  }
};

}  // namespace

std::string layout_fingerprint(const pyflame_layout& l) {
  // Generated from the same lists as the table, so no member is missed.
  Fingerprint f;
#define PYFLAME_ADD_MEMBER(name, kind) f.add(l.name);
#define PYFLAME_ADD_NUMBER(name) f.add(l.name);
  PYFLAME_LAYOUT_MEMBERS(PYFLAME_ADD_MEMBER)
  PYFLAME_LAYOUT_NUMBERS(PYFLAME_ADD_NUMBER)
#undef PYFLAME_ADD_MEMBER
#undef PYFLAME_ADD_NUMBER
  f.add(l.unicode_kind);
  f.add(l.unicode_compact);
  f.add(l.unicode_ascii);
  for (int64_t i = 0; i < l.debug_check_count; ++i) {
    f.add(l.debug_checks[i].position);
    f.add(static_cast<int64_t>(l.debug_checks[i].expected));
  }
  return fmt::format("{:016x}", f.hash);
}

}  // namespace pyflame::versions

#include "versions/walker/layout_module.h"

#include <fmt/format.h>

#include "core/errors.h"
#include "versions/walker/layout_interpreter.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

LayoutModule::LayoutModule(const pyflame_layout& layout, const char* headers_path)
    : layout_(layout) {
  info_.major = layout.major;
  info_.minor = layout.minor;
  info_.headers_version = layout.py_version;
  info_.headers_path = headers_path;
  info_.layout_fingerprint = layout_fingerprint(layout);
}

std::unique_ptr<core::Interpreter> LayoutModule::locate(const core::Process& process,
                                                        const core::PythonBinary& binary) const {
  const pyflame_layout& l = layout_;
  auto missing = [&](const char* what) {
    return Error(ExitCode::kNotPython,
                 fmt::format("pyflame: process {}: {} has no symbol {}; it is not a CPython "
                             "{}.{} interpreter pyflame can read",
                             process.pid(), binary.target_path(), what, l.major, l.minor));
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
  symbols.version = binary.version().full;
  symbols.target_path = binary.target_path();
  if (l.runtime_interpreters_head != PYFLAME_ABSENT) {
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
  return make_layout_interpreter(l, process, process.pid(), symbols);
}

std::unique_ptr<core::Interpreter> make_layout_interpreter(const pyflame_layout& layout,
                                                           const core::Memory& target, int pid,
                                                           const TargetSymbols& symbols) {
  return std::make_unique<LayoutInterpreter>(layout, target, pid, symbols);
}

std::string layout_fingerprint(const pyflame_layout& l) {
  // FNV-1a over every offset and size, in declaration order.
  const int64_t fields[] = {
      l.frame_model, l.string_model, l.line_table_model, l.lasti_unit_bytes,
      static_cast<int64_t>(l.stackref_tag_mask), l.ob_refcnt, l.ob_type, l.ob_size,
      l.runtime_interpreters_head, l.runtime_tstate_current, l.interp_next,
      l.interp_tstate_head, l.interp_gil, l.gil_locked, l.gil_last_holder, l.sizeof_gil_field,
      l.tstate_next, l.tstate_interp, l.tstate_frame, l.tstate_cframe, l.cframe_current_frame,
      l.tstate_current_frame, l.tstate_thread_id, l.tstate_native_thread_id, l.tstate_base_frame,
      l.sizeof_tstate,
      l.frame_back, l.frame_code, l.frame_lasti, l.sizeof_frame_lasti, l.frame_gen, l.iframe_code,
      l.iframe_previous, l.iframe_instr, l.iframe_owner, l.iframe_stacktop,
      l.sizeof_iframe_stacktop, l.sizeof_iframe, l.owner_cstack,
      l.owner_interpreter, l.owner_generator, l.owner_frame_object, l.code_name, l.code_qualname, l.code_filename,
      l.code_firstlineno, l.code_flags, l.generator_flags, l.code_line_table, l.code_adaptive, l.code_firsttraceable,
      l.sizeof_firsttraceable, l.code_nlocalsplus, l.sizeof_code, l.bytes_sval, l.unicode_length,
      l.unicode_kind.byte_offset, l.unicode_kind.mask, l.unicode_compact.byte_offset,
      l.unicode_compact.mask, l.unicode_ascii.byte_offset, l.unicode_ascii.mask,
      l.sizeof_ascii_object, l.sizeof_compact_unicode, l.sizeof_debug_offsets};
  uint64_t hash = 0xcbf29ce484222325ull;
  for (int64_t f : fields) {
    for (int i = 0; i < 8; ++i) {
      hash ^= (static_cast<uint64_t>(f) >> (8 * i)) & 0xff;
      hash *= 0x100000001b3ull;
    }
  }
  return fmt::format("{:016x}", hash);
}

}  // namespace pyflame::versions

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compiled once per Python version, against that version's own headers
 * (CMake's add_pyflame_version()), to fill the layout table the walker uses.
 * Every number here comes from offsetof()/sizeof() or from measuring a
 * bitfield; none is written by hand. C, not C++: the internal headers of
 * 3.7 - 3.12 use C11 atomics that do not compile as C++.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x03070000 && PY_VERSION_HEX < 0x03080000
#include "internal/pystate.h" /* _PyRuntimeState */
#elif PY_VERSION_HEX >= 0x03080000
#include "internal/pycore_pystate.h"
#endif
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_runtime.h"
#endif
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#endif
#if PY_VERSION_HEX >= 0x030b0000 && PY_VERSION_HEX < 0x030c0000
/* 3.11's opcode tables (the inline caches of each instruction, and the
 * base instruction of each specialized one), defined here under our own
 * names. */
#define NEED_OPCODE_TABLES
#define _PyOpcode_Caches pyflame_opcode_caches
#define _PyOpcode_Deopt pyflame_opcode_deopt
#include "internal/pycore_opcode.h"
#undef NEED_OPCODE_TABLES
#endif
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#endif
#if PY_VERSION_HEX >= 0x030c0000
#include "internal/pycore_gil.h"
#endif
#if PY_MAJOR_VERSION < 3 || PY_VERSION_HEX < 0x030b0000
#include <longintrepr.h> /* PyLongObject's digits (3.11+: from Python.h) */
#endif
#if PY_VERSION_HEX >= 0x030c0000
#include "internal/pycore_long.h" /* lv_tag's sign bits */
#endif
#if PY_VERSION_HEX >= 0x030e0000
#include "internal/pycore_stackref.h"
#include "internal/pycore_debug_offsets.h"
#endif

#include "layout.h"

#define ABSENT PYFLAME_ABSENT
#define OFF(type, member) ((int64_t)offsetof(type, member))
#define MEMBER_SIZE(type, member) ((int64_t)sizeof(((type*)0)->member))

/* Measure a member of each kind (see PYFLAME_LAYOUT_MEMBERS). A WORD that is
 * not 8 bytes or an INTEGER of an odd width does not compile: the negative
 * array size is the error. */
#define REQUIRE(condition) ((void)sizeof(char[(condition) ? 1 : -1]))
#define IS_SIGNED(m) ((__typeof__(m))-1 < (__typeof__(m))0)
#define WORD(out, type, member)                                      \
  do {                                                               \
    REQUIRE(MEMBER_SIZE(type, member) == sizeof(uint64_t));          \
    (out).offset = OFF(type, member);                                \
  } while (0)
#define INTEGER(out, type, member)                                   \
  do {                                                               \
    REQUIRE(MEMBER_SIZE(type, member) == 1 || MEMBER_SIZE(type, member) == 2 || \
            MEMBER_SIZE(type, member) == 4 || MEMBER_SIZE(type, member) == 8);  \
    (out).offset = OFF(type, member);                                \
    (out).size = (int32_t)MEMBER_SIZE(type, member);                 \
    (out).is_signed = IS_SIGNED(((type*)0)->member);                 \
  } while (0)
#define PLACE(out, type, member) ((out).offset = OFF(type, member))

/*
 * Measure a bitfield: set it to all ones in a zeroed object and see which
 * bits of which byte moved. The macro sets the field through its own name,
 * so the compiler decides the position.
 */
#define MEASURE_BITFIELD(out, type, field_expr)                          \
  do {                                                                   \
    type probe_;                                                         \
    unsigned char bytes_[sizeof(type)];                                  \
    size_t i_, j_;                                                       \
    memset(&probe_, 0, sizeof probe_);                                   \
    --probe_.field_expr; /* unsigned: wraps to all ones */               \
    memcpy(bytes_, &probe_, sizeof probe_);                              \
    (out).byte_offset = ABSENT;                                          \
    for (i_ = 0; i_ < sizeof bytes_ && bytes_[i_] == 0; ++i_) {          \
    }                                                                    \
    if (i_ < sizeof bytes_) {                                            \
      uint32_t m_ = 0;                                                   \
      for (j_ = 0; j_ < 4 && i_ + j_ < sizeof bytes_; ++j_)              \
        m_ |= (uint32_t)bytes_[i_ + j_] << (8 * j_);                     \
      (out).byte_offset = (int64_t)i_;                                   \
      (out).mask = m_;                                                   \
      for ((out).shift = 0; !((m_ >> (out).shift) & 1u); ++(out).shift) {\
      }                                                                  \
    }                                                                    \
  } while (0)

#if PY_VERSION_HEX >= 0x030d0000
#define CHECK(label, debug_field, ours) \
  {label, (int64_t)offsetof(_Py_DebugOffsets, debug_field), (uint64_t)(ours)}
/* The _Py_DebugOffsets entries the walker depends on: if the target's own
 * table disagrees with any of these, it was built from other headers. */
static const struct pyflame_debug_offset_check debug_checks[] = {
    CHECK("runtime_state.interpreters_head", runtime_state.interpreters_head,
          offsetof(_PyRuntimeState, interpreters.head)),
    CHECK("interpreter_state.next", interpreter_state.next,
          offsetof(PyInterpreterState, next)),
    CHECK("interpreter_state.threads_head", interpreter_state.threads_head,
          offsetof(PyInterpreterState, threads.head)),
    CHECK("thread_state.next", thread_state.next, offsetof(PyThreadState, next)),
    CHECK("thread_state.interp", thread_state.interp,
          offsetof(PyThreadState, interp)),
    CHECK("thread_state.current_frame", thread_state.current_frame,
          offsetof(PyThreadState, current_frame)),
    CHECK("thread_state.thread_id", thread_state.thread_id,
          offsetof(PyThreadState, thread_id)),
    CHECK("thread_state.native_thread_id", thread_state.native_thread_id,
          offsetof(PyThreadState, native_thread_id)),
    CHECK("interpreter_frame.previous", interpreter_frame.previous,
          offsetof(_PyInterpreterFrame, previous)),
    CHECK("interpreter_frame.executable", interpreter_frame.executable,
          offsetof(_PyInterpreterFrame, f_executable)),
    CHECK("interpreter_frame.instr_ptr", interpreter_frame.instr_ptr,
          offsetof(_PyInterpreterFrame, instr_ptr)),
    CHECK("interpreter_frame.owner", interpreter_frame.owner,
          offsetof(_PyInterpreterFrame, owner)),
    CHECK("code_object.filename", code_object.filename,
          offsetof(PyCodeObject, co_filename)),
    CHECK("code_object.name", code_object.name, offsetof(PyCodeObject, co_name)),
    CHECK("code_object.qualname", code_object.qualname,
          offsetof(PyCodeObject, co_qualname)),
    CHECK("code_object.linetable", code_object.linetable,
          offsetof(PyCodeObject, co_linetable)),
    CHECK("code_object.firstlineno", code_object.firstlineno,
          offsetof(PyCodeObject, co_firstlineno)),
    CHECK("code_object.co_code_adaptive", code_object.co_code_adaptive,
          offsetof(PyCodeObject, co_code_adaptive)),
    CHECK("pyobject.ob_type", pyobject.ob_type, offsetof(PyObject, ob_type)),
    CHECK("unicode_object.state", unicode_object.state,
          offsetof(PyASCIIObject, state)),
    CHECK("unicode_object.length", unicode_object.length,
          offsetof(PyASCIIObject, length)),
    CHECK("unicode_object.asciiobject_size", unicode_object.asciiobject_size,
          sizeof(PyASCIIObject)),
    CHECK("interpreter_state.gil_runtime_state_locked",
          interpreter_state.gil_runtime_state_locked,
          offsetof(PyInterpreterState, _gil.locked)),
    CHECK("interpreter_state.gil_runtime_state_holder",
          interpreter_state.gil_runtime_state_holder,
          offsetof(PyInterpreterState, _gil.last_holder)),
#ifdef Py_GIL_DISABLED
    CHECK("free_threaded", free_threaded, 1),
#else
    CHECK("free_threaded", free_threaded, 0),
#endif
};
#undef CHECK
#endif

static struct pyflame_layout measure(void) {
  struct pyflame_layout l;
  memset(&l, 0, sizeof l);
  /* Every member and number starts absent; each kind knows its name. */
#define START_MEMBER(member, kind) \
  l.member.offset = ABSENT;          \
  l.member.name = #member;
#define START_NUMBER(number) l.number = ABSENT;
  PYFLAME_LAYOUT_MEMBERS(START_MEMBER)
  PYFLAME_LAYOUT_NUMBERS(START_NUMBER)
#undef START_MEMBER
#undef START_NUMBER
  l.unicode_kind.byte_offset = ABSENT;
  l.unicode_compact.byte_offset = ABSENT;
  l.unicode_ascii.byte_offset = ABSENT;
  l.py_version_hex = PY_VERSION_HEX;
  l.py_version = PY_VERSION;
  l.major = PY_MAJOR_VERSION;
  l.minor = PY_MINOR_VERSION;
  l.stackref_tag_mask = 0;
  l.debug_cookie = NULL;
  l.debug_checks = NULL;
  l.debug_check_count = 0;

#ifdef Py_GIL_DISABLED
  /* Split reference counts (ob_ref_local, ob_ref_shared): no ob_refcnt. */
  l.free_threaded = 1;
#else
  INTEGER(l.ob_refcnt, PyObject, ob_refcnt);
  l.free_threaded = 0;
#endif
  WORD(l.ob_type, PyObject, ob_type);
  INTEGER(l.ob_size, PyVarObject, ob_size);

  /* ---- runtime and interpreter list ---- */
#if PY_VERSION_HEX >= 0x03070000
  WORD(l.runtime_interpreters_head, _PyRuntimeState, interpreters.head);
#endif
#if PY_VERSION_HEX >= 0x03070000 && PY_VERSION_HEX < 0x030c0000
  WORD(l.runtime_tstate_current, _PyRuntimeState, gilstate.tstate_current);
#endif
  WORD(l.interp_next, PyInterpreterState, next);
#if PY_VERSION_HEX >= 0x030b0000
  WORD(l.interp_tstate_head, PyInterpreterState, threads.head);
#else
  WORD(l.interp_tstate_head, PyInterpreterState, tstate_head);
#endif
#if PY_VERSION_HEX >= 0x030c0000
  WORD(l.interp_gil, PyInterpreterState, ceval.gil);
#if PY_VERSION_HEX < 0x030d0000
  INTEGER(l.gil_locked, struct _gil_runtime_state, locked._value); /* _Py_atomic_int */
#else
  INTEGER(l.gil_locked, struct _gil_runtime_state, locked);
#endif
  WORD(l.gil_last_holder, struct _gil_runtime_state, last_holder);
#ifdef Py_GIL_DISABLED
  /* Off unless PYTHON_GIL=1 or an extension that needs it turns it on. */
  INTEGER(l.gil_enabled, struct _gil_runtime_state, enabled);
#endif
#endif

  /* ---- thread state ---- */
  WORD(l.tstate_next, PyThreadState, next);
  WORD(l.tstate_interp, PyThreadState, interp);
  INTEGER(l.tstate_thread_id, PyThreadState, thread_id);
  l.sizeof_tstate = (int64_t)sizeof(PyThreadState);
#if PY_VERSION_HEX >= 0x030b0000
  INTEGER(l.tstate_native_thread_id, PyThreadState, native_thread_id);
#endif

  /* ---- frames ---- */
#if PY_VERSION_HEX < 0x030b0000
  l.frame_model = PYFLAME_FRAME_OBJECTS;
  WORD(l.tstate_frame, PyThreadState, frame);
  WORD(l.frame_back, PyFrameObject, f_back);
  WORD(l.frame_code, PyFrameObject, f_code);
  INTEGER(l.frame_lasti, PyFrameObject, f_lasti);
#if PY_VERSION_HEX >= 0x03060000
  WORD(l.frame_gen, PyFrameObject, f_gen);
#endif
#if PY_VERSION_HEX >= 0x030a0000
  l.lasti_unit_bytes = (int64_t)sizeof(_Py_CODEUNIT);
#else
  l.lasti_unit_bytes = 1;
#endif
#else
  l.frame_model = PYFLAME_INTERPRETER_FRAMES;
  l.lasti_unit_bytes = (int64_t)sizeof(_Py_CODEUNIT);
  WORD(l.iframe_previous, _PyInterpreterFrame, previous);
  INTEGER(l.iframe_owner, _PyInterpreterFrame, owner);
  l.owner_generator = FRAME_OWNED_BY_GENERATOR;
  l.owner_frame_object = FRAME_OWNED_BY_FRAME_OBJECT;
  l.sizeof_iframe = OFF(_PyInterpreterFrame, localsplus);
#if PY_VERSION_HEX >= 0x030d0000
  WORD(l.tstate_current_frame, PyThreadState, current_frame);
  WORD(l.iframe_code, _PyInterpreterFrame, f_executable);
  WORD(l.iframe_instr, _PyInterpreterFrame, instr_ptr);
#else
  WORD(l.tstate_cframe, PyThreadState, cframe);
  WORD(l.cframe_current_frame, _PyCFrame, current_frame);
  WORD(l.iframe_code, _PyInterpreterFrame, f_code);
  WORD(l.iframe_instr, _PyInterpreterFrame, prev_instr);
#endif
#if PY_VERSION_HEX < 0x030c0000
  /* 3.11 marks the first frame of each eval-loop call; 3.12+ push a shim
   * frame under it instead. */
  INTEGER(l.iframe_is_entry, _PyInterpreterFrame, is_entry);
#endif
#if PY_VERSION_HEX < 0x030c0000
  {
    /* A frame that called the one above it inside the same eval-loop call
     * (that one not an entry frame) stands at the instruction that pushed
     * it: a call, or a subscript that runs a Python __getitem__. */
    static uint8_t units[256], pushes[256];
    for (int op = 0; op < 256; ++op) {
      const int base = _PyOpcode_Deopt[op];
      units[op] = (uint8_t)(1 + _PyOpcode_Caches[base]);
      pushes[op] = base == CALL || base == BINARY_SUBSCR;
    }
    l.instruction_units = units;
    l.pushes_frame = pushes;
  }
#endif
#if PY_VERSION_HEX >= 0x030c0000 && PY_VERSION_HEX < 0x030e0000
  /* The eval loop holds a running frame's stack pointer itself and sets
   * stacktop to -1; popping a frame sets it to 0 (_PyFrame_ClearLocals). */
  INTEGER(l.iframe_stacktop, _PyInterpreterFrame, stacktop);
#endif
#if PY_VERSION_HEX >= 0x030c0000 && PY_VERSION_HEX < 0x030f0000
  /* 3.14 still pushes some (its _PyFrame_IsIncomplete skips every owner
   * from FRAME_OWNED_BY_INTERPRETER on); 3.15 has none. */
  l.owner_cstack = FRAME_OWNED_BY_CSTACK;
#endif
#if PY_VERSION_HEX >= 0x030f0000
  WORD(l.tstate_base_frame, PyThreadState, base_frame);
#endif
#if PY_VERSION_HEX >= 0x030e0000
  /* 3.14 moved most C-stack shim frames to this owner. */
  l.owner_interpreter = FRAME_OWNED_BY_INTERPRETER;
  l.stackref_tag_mask = Py_TAG_BITS;
#endif
#endif

  /* ---- code objects ---- */
  WORD(l.code_name, PyCodeObject, co_name);
  WORD(l.code_filename, PyCodeObject, co_filename);
  INTEGER(l.code_firstlineno, PyCodeObject, co_firstlineno);
  INTEGER(l.code_flags, PyCodeObject, co_flags);
  l.generator_flags = CO_GENERATOR;
#ifdef CO_COROUTINE
  l.generator_flags |= CO_COROUTINE;
#endif
#ifdef CO_ASYNC_GENERATOR
  l.generator_flags |= CO_ASYNC_GENERATOR;
#endif
  l.sizeof_code = (int64_t)sizeof(PyCodeObject);
#if PY_VERSION_HEX >= 0x030b0000
  WORD(l.code_qualname, PyCodeObject, co_qualname);
  PLACE(l.code_adaptive, PyCodeObject, co_code_adaptive);
  INTEGER(l.code_firsttraceable, PyCodeObject, _co_firsttraceable);
  INTEGER(l.code_nlocalsplus, PyCodeObject, co_nlocalsplus);
#endif
#if PY_VERSION_HEX >= 0x030a0000
  WORD(l.code_line_table, PyCodeObject, co_linetable);
#else
  WORD(l.code_line_table, PyCodeObject, co_lnotab);
#endif
#if PY_VERSION_HEX >= 0x030b0000
  l.line_table_model = PYFLAME_LOCATION_TABLE;
#elif PY_VERSION_HEX >= 0x030a0000
  l.line_table_model = PYFLAME_LINETABLE_310;
#elif PY_VERSION_HEX >= 0x03060000
  l.line_table_model = PYFLAME_LNOTAB_SIGNED;
#else
  l.line_table_model = PYFLAME_LNOTAB_UNSIGNED;
#endif

  /* ---- strings ---- */
#if PY_MAJOR_VERSION < 3
  l.string_model = PYFLAME_STRINGS_BYTES;
  PLACE(l.bytes_sval, PyStringObject, ob_sval);
#else
  l.string_model = PYFLAME_STRINGS_PEP393;
  PLACE(l.bytes_sval, PyBytesObject, ob_sval);
  INTEGER(l.unicode_length, PyASCIIObject, length);
  l.sizeof_ascii_object = (int64_t)sizeof(PyASCIIObject);
  l.sizeof_compact_unicode = (int64_t)sizeof(PyCompactUnicodeObject);
  MEASURE_BITFIELD(l.unicode_kind, PyASCIIObject, state.kind);
  MEASURE_BITFIELD(l.unicode_compact, PyASCIIObject, state.compact);
  MEASURE_BITFIELD(l.unicode_ascii, PyASCIIObject, state.ascii);
#endif

  /* ---- dump --locals: a frame's variables ---- */
#if PY_VERSION_HEX < 0x030b0000
  PLACE(l.frame_localsplus, PyFrameObject, f_localsplus);
  INTEGER(l.code_nlocals, PyCodeObject, co_nlocals);
  WORD(l.code_varnames, PyCodeObject, co_varnames);
  WORD(l.code_cellvars, PyCodeObject, co_cellvars);
  WORD(l.code_freevars, PyCodeObject, co_freevars);
#else
  PLACE(l.iframe_localsplus, _PyInterpreterFrame, localsplus);
  REQUIRE(MEMBER_SIZE(_PyInterpreterFrame, localsplus[0]) == sizeof(uint64_t));
  WORD(l.code_localsplusnames, PyCodeObject, co_localsplusnames);
  WORD(l.code_localspluskinds, PyCodeObject, co_localspluskinds);
  l.fast_cell = CO_FAST_CELL;
  l.fast_free = CO_FAST_FREE;
#ifdef CO_FAST_HIDDEN
  l.fast_hidden = CO_FAST_HIDDEN;
#endif
#endif
  INTEGER(l.code_argcount, PyCodeObject, co_argcount);
#if PY_MAJOR_VERSION >= 3
  INTEGER(l.code_kwonlyargcount, PyCodeObject, co_kwonlyargcount);
#endif
  l.co_varargs = CO_VARARGS;
  l.co_varkeywords = CO_VARKEYWORDS;
#if PY_VERSION_HEX >= 0x030e0000
  l.stackref_int_tag = Py_INT_TAG;
#endif

  /* ---- ... and the objects they hold ---- */
  WORD(l.type_name, PyTypeObject, tp_name);
  PLACE(l.tuple_items, PyTupleObject, ob_item);
  INTEGER(l.dict_used, PyDictObject, ma_used);
  INTEGER(l.set_used, PySetObject, used);
  WORD(l.cell_ref, PyCellObject, ob_ref);
  REQUIRE(MEMBER_SIZE(PyFloatObject, ob_fval) == sizeof(double) && sizeof(double) == 8);
  PLACE(l.float_value, PyFloatObject, ob_fval);
#if PY_MAJOR_VERSION < 3
  INTEGER(l.int_value, PyIntObject, ob_ival);
#endif
  l.long_shift = PyLong_SHIFT;
  l.sizeof_digit = (int64_t)sizeof(digit);
#if PY_VERSION_HEX >= 0x030c0000
  INTEGER(l.long_tag, PyLongObject, long_value.lv_tag);
  PLACE(l.long_digits, PyLongObject, long_value.ob_digit);
  l.long_sign_mask = _PyLong_SIGN_MASK;
  l.long_sign_negative = SIGN_NEGATIVE;
  l.long_sign_zero = SIGN_ZERO;
  l.long_non_size_bits = _PyLong_NON_SIZE_BITS;
#else
#if PY_MAJOR_VERSION < 3
  INTEGER(l.long_tag, PyLongObject, ob_size); /* signed: the sign and digit count */
#else
  INTEGER(l.long_tag, PyLongObject, ob_base.ob_size);
#endif
  PLACE(l.long_digits, PyLongObject, ob_digit);
#endif

#if PY_VERSION_HEX >= 0x030d0000
  l.sizeof_debug_offsets = (int64_t)sizeof(_Py_DebugOffsets);
  INTEGER(l.debug_offsets_version, _Py_DebugOffsets, version);
  l.debug_cookie = _Py_Debug_Cookie;
  l.debug_cookie_size = MEMBER_SIZE(_Py_DebugOffsets, cookie);
  l.debug_checks = debug_checks;
  l.debug_check_count = (int64_t)(sizeof debug_checks / sizeof debug_checks[0]);
#endif
  return l;
}

const struct pyflame_layout* pyflame_measured_layout(void) {
  static struct pyflame_layout layout;
  static int measured;
  if (!measured) {
    layout = measure();
    measured = 1;
  }
  return &layout;
}

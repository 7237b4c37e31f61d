// SPDX-License-Identifier: Apache-2.0
/*
 * The seam between a version's headers and the version-agnostic walker.
 *
 * layout.c, compiled once per Python version against that version's own
 * headers, fills one of these with offsetof()/sizeof() values. Nothing here
 * is written by hand: a field the version does not have is PYFLAME_ABSENT.
 * This header is plain C so the C unit and the C++ walker share it; it must
 * not include Python.h.
 */
#ifndef PYFLAME_VERSIONS_LAYOUT_H
#define PYFLAME_VERSIONS_LAYOUT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PYFLAME_ABSENT INT64_C(-1)

/* How a frame chain is stored. */
enum pyflame_frame_model {
  PYFLAME_FRAME_OBJECTS = 1,      /* PyFrameObject.f_back chain (2.7 - 3.10) */
  PYFLAME_INTERPRETER_FRAMES = 2  /* _PyInterpreterFrame.previous chain (3.11+) */
};

/* How co_name / co_filename are stored. */
enum pyflame_string_model {
  PYFLAME_STRINGS_BYTES = 1,  /* PyStringObject (2.7) */
  PYFLAME_STRINGS_PEP393 = 2  /* compact PyUnicodeObject (3.3+) */
};

/* Which co_lnotab / co_linetable format the code objects carry. */
enum pyflame_line_table_model {
  PYFLAME_LNOTAB_UNSIGNED = 1, /* 2.7 - 3.5 */
  PYFLAME_LNOTAB_SIGNED = 2,   /* 3.6 - 3.9 */
  PYFLAME_LINETABLE_310 = 3,   /* 3.10, PEP 626 */
  PYFLAME_LOCATION_TABLE = 4   /* 3.11+ */
};

/*
 * Every struct member the walker uses, one list for the table, its
 * measuring code (layout.c) and its fingerprint. Each member has a kind,
 * and each kind its own C type, so that C++ can read a member only the way
 * its kind allows (versions/walker/member.h):
 *   WORD     a pointer or a tagged pointer: 8 bytes, read as an address;
 *   INTEGER  an integer whose width and signedness the compiler measured;
 *   PLACE    where something starts (an array, a nested struct); only ever
 *            an offset, never read as a value.
 * A member this version lacks has offset PYFLAME_ABSENT; reading it throws.
 */
#define PYFLAME_LAYOUT_MEMBERS(X)                                             \
  /* PyObject / PyVarObject */                                                \
  X(ob_refcnt, INTEGER)                                                       \
  X(ob_type, WORD)                                                            \
  X(ob_size, INTEGER)                                                         \
  /* _PyRuntimeState (3.7+): the interpreter list; the current thread state   \
   * (3.7 - 3.11) */                                                          \
  X(runtime_interpreters_head, WORD)                                          \
  X(runtime_tstate_current, WORD)                                             \
  /* PyInterpreterState; its GIL (3.12+) */                                   \
  X(interp_next, WORD)                                                        \
  X(interp_tstate_head, WORD)                                                 \
  X(interp_gil, WORD)                                                         \
  X(gil_locked, INTEGER)                                                      \
  X(gil_last_holder, WORD)                                                    \
  X(gil_enabled, INTEGER) /* free-threaded builds: 0 while there is no GIL */ \
  /* PyThreadState: the frame is tstate_frame (<= 3.10), cframe's            \
   * current_frame (3.11, 3.12) or tstate_current_frame (3.13+) */            \
  X(tstate_next, WORD)                                                        \
  X(tstate_interp, WORD)                                                      \
  X(tstate_frame, WORD)                                                       \
  X(tstate_cframe, WORD)                                                      \
  X(cframe_current_frame, WORD)                                               \
  X(tstate_current_frame, WORD)                                               \
  X(tstate_thread_id, INTEGER)                                                \
  X(tstate_native_thread_id, INTEGER) /* 3.11+ */                             \
  X(tstate_base_frame, WORD)          /* the sentinel every stack ends at (3.15+) */ \
  /* PyFrameObject (<= 3.10) */                                               \
  X(frame_back, WORD)                                                         \
  X(frame_code, WORD)                                                         \
  X(frame_lasti, INTEGER)                                                     \
  X(frame_gen, WORD) /* f_gen (3.6 - 3.10): set while a generator owns it */  \
  /* _PyInterpreterFrame (3.11+) */                                           \
  X(iframe_code, WORD) /* f_code (3.11, 3.12), f_executable (3.13+, tagged from 3.14) */ \
  X(iframe_previous, WORD)                                                    \
  X(iframe_instr, WORD) /* prev_instr (3.11, 3.12) or instr_ptr (3.13+) */    \
  X(iframe_owner, INTEGER)                                                    \
  X(iframe_stacktop, INTEGER) /* 3.12, 3.13: -1 while the frame runs, 0 once popped */ \
  X(iframe_is_entry, INTEGER) /* 3.11: the first frame of its eval-loop call */ \
  /* PyCodeObject */                                                          \
  X(code_name, WORD)                                                          \
  X(code_qualname, WORD) /* 3.11+ */                                          \
  X(code_filename, WORD)                                                      \
  X(code_firstlineno, INTEGER)                                                \
  X(code_flags, INTEGER)                                                      \
  X(code_line_table, WORD) /* co_lnotab or co_linetable */                    \
  X(code_adaptive, PLACE)  /* co_code_adaptive (3.11+): instruction base */   \
  X(code_firsttraceable, INTEGER) /* 3.11+: frames before it are incomplete */ \
  X(code_nlocalsplus, INTEGER)    /* 3.11+ */                                 \
  /* PyStringObject (2.7) / PyBytesObject (3.x); PEP 393 strings */           \
  X(bytes_sval, PLACE)                                                        \
  X(unicode_length, INTEGER)                                                  \
  /* _Py_DebugOffsets (3.13+) */                                              \
  X(debug_offsets_version, INTEGER)                                           \
  /* dump --locals: where a frame keeps its variables, what names them */     \
  X(frame_localsplus, PLACE)       /* f_localsplus (<= 3.10) */               \
  X(iframe_localsplus, PLACE)      /* localsplus (3.11+), tagged from 3.14 */ \
  X(code_argcount, INTEGER)                                                   \
  X(code_kwonlyargcount, INTEGER)  /* 3.x */                                  \
  X(code_nlocals, INTEGER)         /* co_varnames' slots (<= 3.10) */         \
  X(code_varnames, WORD)           /* <= 3.10 */                              \
  X(code_cellvars, WORD)           /* <= 3.10 */                              \
  X(code_freevars, WORD)           /* <= 3.10 */                              \
  X(code_localsplusnames, WORD)    /* 3.11+ */                                \
  X(code_localspluskinds, WORD)    /* 3.11+ */                                \
  /* ... and the objects the variables hold */                                \
  X(type_name, WORD)               /* PyTypeObject.tp_name */                 \
  X(tuple_items, PLACE)            /* PyTupleObject.ob_item */                \
  X(dict_used, INTEGER)            /* PyDictObject.ma_used */                 \
  X(set_used, INTEGER)             /* PySetObject.used */                     \
  X(cell_ref, WORD)                /* PyCellObject.ob_ref */                  \
  X(float_value, PLACE)            /* PyFloatObject.ob_fval, an 8-byte double */ \
  X(int_value, INTEGER)            /* PyIntObject.ob_ival (2.7) */            \
  X(long_tag, INTEGER)             /* lv_tag (3.12+); before, ob_size */      \
  X(long_digits, PLACE)            /* ob_digit */

/* Every other number the walker uses: models, sizes of structs, constants.
 * PYFLAME_ABSENT where it does not apply. */
#define PYFLAME_LAYOUT_NUMBERS(X)                                             \
  X(frame_model)            /* enum pyflame_frame_model */                    \
  X(string_model)           /* enum pyflame_string_model */                   \
  X(line_table_model)       /* enum pyflame_line_table_model */               \
  X(lasti_unit_bytes)       /* f_lasti in code units (3.10+) or bytes */      \
  X(stackref_tag_mask)      /* tag bits of a _PyStackRef (3.14+), else 0 */   \
  X(sizeof_tstate)                                                            \
  X(sizeof_iframe)          /* bytes before localsplus */                     \
  X(owner_cstack)           /* FRAME_OWNED_BY_CSTACK: shim frames to skip */  \
  X(owner_interpreter)      /* FRAME_OWNED_BY_INTERPRETER (3.14+) */          \
  X(owner_generator)        /* FRAME_OWNED_BY_GENERATOR */                    \
  X(owner_frame_object)     /* FRAME_OWNED_BY_FRAME_OBJECT: off every stack */\
  X(generator_flags)        /* CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR */ \
  X(sizeof_code)                                                              \
  X(sizeof_ascii_object)    /* data of a compact ASCII string follows */      \
  X(sizeof_compact_unicode) /* data of other compact strings follows */       \
  X(sizeof_debug_offsets)                                                     \
  X(debug_cookie_size)                                                        \
  /* dump --locals */                                                         \
  X(co_varargs)             /* CO_VARARGS: *args takes a slot */              \
  X(co_varkeywords)         /* CO_VARKEYWORDS: **kwargs takes a slot */       \
  X(fast_cell)              /* CO_FAST_CELL (3.11+) */                        \
  X(fast_free)              /* CO_FAST_FREE (3.11+) */                        \
  X(fast_hidden)            /* CO_FAST_HIDDEN (3.12+): not shown by Python */ \
  X(long_shift)             /* PyLong_SHIFT: bits of a digit */               \
  X(sizeof_digit)                                                             \
  X(long_sign_mask)         /* _PyLong_SIGN_MASK (3.12+) */                   \
  X(long_sign_negative)     /* SIGN_NEGATIVE (3.12+) */                       \
  X(long_sign_zero)         /* SIGN_ZERO (3.12+) */                           \
  X(long_non_size_bits)     /* _PyLong_NON_SIZE_BITS (3.12+) */               \
  X(stackref_int_tag)       /* Py_INT_TAG (3.14+): a tagged int, no object */ \
  X(free_threaded)          /* 1: built with Py_GIL_DISABLED (PEP 703), else 0 */

struct pyflame_member_word {
  int64_t offset;
  const char* name;
};
struct pyflame_member_integer {
  int64_t offset;
  const char* name;
  int32_t size;      /* 1, 2, 4 or 8 */
  int32_t is_signed;
};
struct pyflame_member_place {
  int64_t offset;
  const char* name;
};

/* A bitfield measured by setting it in a local object (see layout.c). */
struct pyflame_bitfield {
  int64_t byte_offset; /* byte holding the field, from the object start */
  uint32_t mask;       /* its bits in a little-endian 32-bit load from there */
  uint32_t shift;
};

/* One _Py_DebugOffsets entry the walker relies on (3.13+): where the target
 * keeps its own value, and the value our headers produce. */
struct pyflame_debug_offset_check {
  const char* name;
  int64_t position; /* offsetof(_Py_DebugOffsets, ...) */
  uint64_t expected;
};

struct pyflame_layout {
  /* Identity of the headers this table was computed from. */
  uint32_t py_version_hex; /* PY_VERSION_HEX */
  const char* py_version;  /* PY_VERSION, e.g. "3.11.7" */
  int major, minor;

#define PYFLAME_DECLARE_MEMBER(name, kind) struct pyflame_member_##kind name;
#define pyflame_member_WORD pyflame_member_word
#define pyflame_member_INTEGER pyflame_member_integer
#define pyflame_member_PLACE pyflame_member_place
  PYFLAME_LAYOUT_MEMBERS(PYFLAME_DECLARE_MEMBER)
#undef PYFLAME_DECLARE_MEMBER

#define PYFLAME_DECLARE_NUMBER(name) int64_t name;
  PYFLAME_LAYOUT_NUMBERS(PYFLAME_DECLARE_NUMBER)
#undef PYFLAME_DECLARE_NUMBER

  /* PEP 393 string state bits (3.x) */
  struct pyflame_bitfield unicode_kind;
  struct pyflame_bitfield unicode_compact;
  struct pyflame_bitfield unicode_ascii;

  /* 3.11: which instructions push a Python frame inside the same
   * eval-loop call, from the version's own opcode tables; NULL elsewhere
   * (3.12 and 3.13 tell it by stacktop instead). For each opcode byte,
   * instruction_units: the code units its instruction spans (itself and its
   * inline caches); pushes_frame: nonzero for CALL and BINARY_SUBSCR and
   * their specialized forms (a Python call, a Python __getitem__). */
  const uint8_t* instruction_units;
  const uint8_t* pushes_frame;

  /* 3.13+: the target's _Py_DebugOffsets must agree with these. */
  const char* debug_cookie;
  const struct pyflame_debug_offset_check* debug_checks;
  int64_t debug_check_count;
};

/* Defined by layout.c in each version's library: the table measured from
 * that version's headers. */
const struct pyflame_layout* pyflame_measured_layout(void);

#ifdef __cplusplus
}
#endif

#endif

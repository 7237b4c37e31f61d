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

  int frame_model;      /* enum pyflame_frame_model */
  int string_model;     /* enum pyflame_string_model */
  int line_table_model; /* enum pyflame_line_table_model */
  /* 3.10 stores f_lasti in code units, older versions in bytes. */
  int64_t lasti_unit_bytes;
  /* 3.14+ stores f_executable as a tagged _PyStackRef; these bits are the
   * tag. 0 where the pointer is plain. */
  uint64_t stackref_tag_mask;

  /* PyObject / PyVarObject */
  int64_t ob_refcnt;
  int64_t ob_type;
  int64_t ob_size;

  /* Where the interpreter list starts. */
  int64_t runtime_interpreters_head; /* _PyRuntimeState (3.7+) */
  int64_t runtime_tstate_current;    /* _PyRuntimeState.gilstate (3.7 - 3.11) */

  /* PyInterpreterState */
  int64_t interp_next;
  int64_t interp_tstate_head;
  int64_t interp_gil;               /* pointer to _gil_runtime_state (3.12+) */
  int64_t gil_locked;               /* _gil_runtime_state */
  int64_t gil_last_holder;
  int64_t sizeof_gil_field;         /* width of .locked */

  /* PyThreadState */
  int64_t tstate_next;
  int64_t tstate_interp;
  int64_t tstate_frame;             /* PyFrameObject* (<= 3.10) */
  int64_t tstate_cframe;            /* _PyCFrame* (3.11, 3.12) */
  int64_t cframe_current_frame;
  int64_t tstate_current_frame;     /* _PyInterpreterFrame* (3.13+) */
  int64_t tstate_thread_id;
  int64_t tstate_native_thread_id;  /* 3.11+ */
  int64_t tstate_base_frame;        /* the sentinel every stack ends at (3.15+) */
  int64_t sizeof_tstate;

  /* PyFrameObject (<= 3.10) */
  int64_t frame_back;
  int64_t frame_code;
  int64_t frame_lasti;
  int64_t sizeof_frame_lasti;
  int64_t frame_gen;                /* f_gen (3.6 - 3.10): set while a generator owns it */

  /* _PyInterpreterFrame (3.11+) */
  int64_t iframe_code;              /* f_code (3.11, 3.12) or f_executable (3.13+) */
  int64_t iframe_previous;
  int64_t iframe_instr;             /* prev_instr (3.11, 3.12) or instr_ptr (3.13+) */
  int64_t iframe_owner;
  int64_t iframe_stacktop;          /* stacktop (3.12, 3.13): -1 while the frame runs, 0 once popped */
  int64_t sizeof_iframe_stacktop;
  int64_t sizeof_iframe;            /* bytes before localsplus */
  int64_t owner_cstack;             /* FRAME_OWNED_BY_CSTACK value; shim frames to skip */
  int64_t owner_interpreter;        /* FRAME_OWNED_BY_INTERPRETER (3.14+) */
  int64_t owner_generator;          /* FRAME_OWNED_BY_GENERATOR */
  int64_t owner_frame_object;       /* FRAME_OWNED_BY_FRAME_OBJECT: a frame off every stack */

  /* PyCodeObject */
  int64_t code_name;
  int64_t code_qualname;            /* 3.11+ */
  int64_t code_filename;
  int64_t code_firstlineno;
  int64_t code_flags;               /* co_flags (an int) */
  int64_t generator_flags;          /* CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR */
  int64_t code_line_table;          /* co_lnotab or co_linetable */
  int64_t code_adaptive;            /* co_code_adaptive (3.11+): instruction base */
  int64_t code_firsttraceable;      /* _co_firsttraceable (3.11+): frames before it are incomplete */
  int64_t sizeof_firsttraceable;
  int64_t code_nlocalsplus;         /* co_nlocalsplus (3.11+): an int */
  int64_t sizeof_code;

  /* Strings: PyStringObject (2.7) / PyBytesObject (3.x) */
  int64_t bytes_sval;
  /* PEP 393 strings */
  int64_t unicode_length;
  struct pyflame_bitfield unicode_kind;
  struct pyflame_bitfield unicode_compact;
  struct pyflame_bitfield unicode_ascii;
  int64_t sizeof_ascii_object;       /* data of a compact ASCII string follows */
  int64_t sizeof_compact_unicode;    /* data of other compact strings follows */

  /* 3.13+: the target's _Py_DebugOffsets must agree with these. */
  int64_t sizeof_debug_offsets;
  int64_t debug_offsets_version;     /* offsetof(_Py_DebugOffsets, version) */
  const char* debug_cookie;
  int64_t debug_cookie_size;
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

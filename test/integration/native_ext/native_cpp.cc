// SPDX-License-Identifier: Apache-2.0
//
// native_cpp: the C++ extension module of test/integration/test_native.py
// (its cpp case), for demangled and DWARF-inlined native frames.
//
//   native_cpp.spin()  (C: cpp_spin) calls pyflame_test::spin_in<int>(1),
//                      which spins forever in pyflame_test::inlined_spin(),
//                      inlined into it, GIL held (until a flag that nothing
//                      sets); the test kills the process.
//
// The main thread's native stack, innermost first, is then
//   pyflame_test::inlined_spin()          inlined (DWARF), at the loop's line
//   int pyflame_test::spin_in<int>(int)   at the call of inlined_spin()
//   cpp_spin                              at the call of spin_in<int>()
// Built by the test, per interpreter, against that interpreter's headers:
//   c++ -O1 -g -fPIC -shared -fno-omit-frame-pointer -fno-exceptions
//       -fno-rtti -Wl,--as-needed -I... native_cpp.cc
// Nothing here uses the C++ library: with --as-needed the module needs no
// libstdc++.so (the chrooted interpreters have none). The lines marked
// "// AT name" are the lines the test expects each frame at (it reads them
// from this file). Compiles against CPython 2.7 and 3.6 to 3.15.
#include <Python.h>

extern "C" {
// The loop's counter, and a flag that nothing sets: volatile, so that the
// loop is neither optimized away nor known never to end (so spin_in<int>
// may return, and cpp_spin keeps its frame).
volatile unsigned long native_cpp_counter;
volatile int native_cpp_stop;
}

namespace pyflame_test {

// inline, not static inline: GCC gives a function of internal linkage that
// is inlined everywhere (no out-of-line copy) no DW_AT_linkage_name, only
// its DW_AT_name, and an inlined frame is then named "inlined_spin" (the
// DWARF name) where the test expects the demangled linkage name
// "pyflame_test::inlined_spin()". always_inline: no call, no frame of its
// own on the C stack, only DWARF's inlined subroutine.
inline __attribute__((always_inline)) void inlined_spin() {
  while (!native_cpp_stop) native_cpp_counter++;  // AT inlined_spin
}

template <typename T>
__attribute__((noinline)) T spin_in(T x) {
  inlined_spin();  // AT spin_in
  return x;
}

template int spin_in<int>(int);

}  // namespace pyflame_test

extern "C" {

__attribute__((noinline)) PyObject *cpp_spin(PyObject *self, PyObject *args);

__attribute__((noinline)) PyObject *cpp_spin(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  // Work after the call keeps it from being a tail call (no frame left).
  native_cpp_counter += pyflame_test::spin_in<int>(1);  // AT cpp_spin
  Py_RETURN_NONE;
}

static PyMethodDef native_cpp_methods[] = {
    {"spin", cpp_spin, METH_NOARGS, "spin(): loop in C++ forever, holding the GIL"},
    {NULL, NULL, 0, NULL},
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef native_cpp_module = {
    PyModuleDef_HEAD_INIT, "native_cpp", "pyflame's --native C++ test extension", -1,
    native_cpp_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_native_cpp(void) { return PyModule_Create(&native_cpp_module); }
#else
PyMODINIT_FUNC initnative_cpp(void) {
  Py_InitModule3("native_cpp", native_cpp_methods, "pyflame's --native C++ test extension");
}
#endif

}  // extern "C"

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * native_ext: the C extension module of test/integration/test_native.py.
 *
 *   native_ext.call_back(f)  calls f() from C (ext_call_back) and returns
 *                            its result;
 *   native_ext.spin()        loops in C (ext_spin) forever, GIL held (until
 *                            a flag that nothing sets); the test kills the
 *                            process.
 *
 * Built by the test, per interpreter, against that interpreter's headers:
 *   cc -O1 -g -fPIC -shared -fno-omit-frame-pointer -I... native_ext.c
 * The two functions are global and noinline so that their names are in the
 * symbol table and each has a frame of its own in the native stack.
 * Compiles against CPython 2.7 and 3.6 to 3.15.
 */
#include <Python.h>

PyObject *ext_call_back(PyObject *self, PyObject *args);
PyObject *ext_spin(PyObject *self, PyObject *args);

/* The loop's counter, and a flag that nothing sets: volatile, so that the
 * loop is neither optimized away nor known never to end (a function that
 * cannot return may be compiled without its frame pointer). */
volatile unsigned long native_ext_counter;
volatile int native_ext_stop;

__attribute__((noinline)) PyObject *ext_call_back(PyObject *self, PyObject *args) {
  PyObject *function;
  PyObject *result;
  (void)self;
  if (!PyArg_ParseTuple(args, "O:call_back", &function)) {
    return NULL;
  }
  result = PyObject_CallObject(function, NULL);
  /* Work after the call keeps it from being a tail call (no frame left). */
  native_ext_counter++;
  return result;
}

__attribute__((noinline)) PyObject *ext_spin(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  while (!native_ext_stop) {
    native_ext_counter++;
  }
  Py_RETURN_NONE;
}

static PyMethodDef native_ext_methods[] = {
    {"call_back", ext_call_back, METH_VARARGS, "call_back(f): f() called from C"},
    {"spin", ext_spin, METH_NOARGS, "spin(): loop in C forever, holding the GIL"},
    {NULL, NULL, 0, NULL},
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef native_ext_module = {
    PyModuleDef_HEAD_INIT, "native_ext", "pyflame's --native test extension", -1,
    native_ext_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_native_ext(void) { return PyModule_Create(&native_ext_module); }
#else
PyMODINIT_FUNC initnative_ext(void) {
  Py_InitModule3("native_ext", native_ext_methods, "pyflame's --native test extension");
}
#endif

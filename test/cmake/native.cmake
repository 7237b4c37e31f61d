# SPDX-License-Identifier: Apache-2.0
# --native in dump and record against every provisioned interpreter
# (test/integration/test_native.py): a C extension built at test time
# against the interpreter's headers (native_ext/native_ext.c) calls back
# into Python and spins in C; the merged stacks must be exactly the
# fixture's, and a sleeping thread's innermost frame native, in libc. A C++
# extension (native_ext/native_cpp.cc, built with c++) gives demangled
# names (int pyflame_test::spin_in<int>(int)) and a DWARF-inlined frame; and
# native_ext.so imported only after `record --native` attached (dlopen)
# must be picked up: its stacks merged, none "not merged".
# --native stops the target's threads for each sample, as --blocking does,
# on a target of its own: like the --blocking tests, no RUN_SERIAL (nothing
# here is a share of CPU time, the dlopen case's floor is half the samples
# the run achieved); about 15 s each.
pyflame_add_interpreter_test(native test_native.py 120)
# numpy's C code under the Python line that sorts, with Debian's python3.11
# and python3-numpy (scripts/setup.sh).
add_test(NAME native/numpy
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_native_numpy.py
                 --bin-dir ${bin_dir} --manifest ${manifest})
set_tests_properties(native/numpy PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

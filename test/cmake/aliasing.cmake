# SPDX-License-Identifier: Apache-2.0
# Sampling that does not alias: record at the default 100 Hz a program that
# repeats exactly every 10 ms (test/integration/test_aliasing.py). The
# schedule is in core, the same for every version: three interpreters.
foreach(name pyenv-2.7.18 pyenv-3.11.7 sid-3.14)
  # Registered even when the manifest lacks it (see reliability.cmake).
  add_test(NAME aliasing/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_aliasing.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest})
  # Shares within 5 points, as record's accuracy check: run alone.
  set_tests_properties(aliasing/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 90 RUN_SERIAL TRUE)
endforeach()

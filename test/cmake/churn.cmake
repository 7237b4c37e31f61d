# SPDX-License-Identifier: Apache-2.0
# Exact samples (issue 11): every sample of fixture_churn.py, whose stacks
# change every few microseconds, must be a stack the fixture can have
# (test/integration/test_churn.py). churn/<interp>: a nonblocking record,
# at most 0.1% impossible; churn-dump/<interp>: 30 nonblocking dumps, none
# impossible, at most 3 without a consistent stack; churn-launch/<interp>:
# launched recordings of an import-heavy start, no <unknown> frame.
foreach(name IN LISTS interpreters)
  add_test(NAME churn/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_churn.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest} --case record)
  set_tests_properties(churn/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
  add_test(NAME churn-dump/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_churn.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest} --case dump)
  set_tests_properties(churn-dump/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
  add_test(NAME churn-launch/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_churn.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest} --case launch)
  set_tests_properties(churn-launch/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
# The oracle's own check: a --blocking recording (a stopped target) must come
# out with no impossible sample, on each frame model.
foreach(name pyenv-2.7.18 pyenv-3.11.7 sid-3.14)
  # Registered even when the manifest lacks it (see reliability.cmake).
  add_test(NAME churn-oracle/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_churn.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest} --case record
                   --blocking)
  set_tests_properties(churn-oracle/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()

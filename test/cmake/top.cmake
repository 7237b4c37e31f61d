# SPDX-License-Identifier: Apache-2.0
# `top` against every provisioned interpreter (test/integration/test_top.py):
# the full-screen view in tmux (shares, keys, resize, the target's exit),
# TERM=linux, and the plain-text forms; about 15 s each. Its shares are
# checked against the workload's CPU time, as record's accuracy case is,
# so it runs alone for the same reason (test/cmake/record.cmake).
foreach(name IN LISTS interpreters)
  add_test(NAME top/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_top.py
                   --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest})
  set_tests_properties(top/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180 RUN_SERIAL TRUE)
endforeach()

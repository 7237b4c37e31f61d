# SPDX-License-Identifier: Apache-2.0
# --subprocesses (issue 17): one profile of a process tree, each Python
# child read by the pyflameX.Y of its own version
# (test/integration/test_subprocesses.py). The parent is pyenv's 3.11.7;
# its children 3.11, pyenv's 2.7.18 and 3.12.1. subprocesses/pool:
# multiprocessing pools (fork, spawn; launched, attached, --blocking),
# dump and top; subprocesses/versions: 2.7 and 3.12 children, a shell that
# execs Python, a version without its binary, a child that execs a
# non-Python program; subprocesses/short: 100 short-lived children. About
# 20-30 s each on the 2-core machine. The shares are of wall-clock slices
# measured by each process (a loaded machine moves both alike): no
# RUN_SERIAL. Registered even when the manifest lacks an interpreter (see
# reliability.cmake).
foreach(group pool versions short)
  add_test(NAME subprocesses/${group}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_subprocesses.py
                   --bin-dir ${bin_dir} --manifest ${manifest} --group ${group})
  set_tests_properties(subprocesses/${group} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
endforeach()

# SPDX-License-Identifier: Apache-2.0
# record against every provisioned interpreter: accuracy, hot lines, launch,
# Ctrl-C, SIGTERM, target exit, --idle/--gil, the status line, the classic
# forms (test/integration/test_record.py): every case in both modes; about
# 20-25 s per interpreter and mode on the 2-core machine.
pyflame_add_interpreter_tests(record test_record.py 180)
# The accuracy check (nonblocking) compares sampled shares with the
# workload's own CPU time within 5 points: another test's busy threads on
# the same 2 cores skew both tools alike (seen with the build before exact
# samples too), so these run alone while ctest runs the rest two at a time.
foreach(name IN LISTS interpreters)
  set_tests_properties(record/${name}/nonblocking PROPERTIES RUN_SERIAL TRUE)
endforeach()

# SPDX-License-Identifier: Apache-2.0
# Reliability (issue 6, docs/reliability.md): fault injection against a
# representative subset of the provisioned interpreters, and command-line /
# environment errors. Each faults/<case>/<interpreter> test prints its
# repeat count.
set(fault_interpreters pyenv-3.11.7 pyenv-2.7.18 sid-3.14 built-3.13t)
# Every case on 3.11 and on the free-threaded 3.13t (no GIL: its threads
# race the walker truly in parallel); the cheaper subset (and fewer
# repeats) elsewhere, so that the group stays within a few minutes.
set(fault_cases_full target_dies target_execs thread_churn finalization sigkill two_profilers
    traced stopped namespace same_output job_control many_threads idle_threads)
set(fault_cases_subset target_dies thread_churn finalization sigkill idle_threads)

foreach(interp IN LISTS fault_interpreters)
  # Registered even when the manifest lacks it: the test then reports the
  # interpreter missing (a skip, a failure in CI), never nothing at all.
  if(interp STREQUAL "pyenv-3.11.7" OR interp STREQUAL "built-3.13t")
    set(cases ${fault_cases_full})
  elseif(interp STREQUAL "pyenv-2.7.18")
    # namespace: 2.7 finds TIDs through glibc's struct pthread (the
    # target's own TIDs, mapped to ours). Not sid-3.14: its chroot has no
    # /proc for the fixture to name its threads.
    set(cases ${fault_cases_subset} namespace)
  else()
    set(cases ${fault_cases_subset})
  endif()
  foreach(case IN LISTS cases)
    set(args "")
    if(NOT interp STREQUAL "pyenv-3.11.7" AND case STREQUAL "sigkill")
      set(args --repeat 20)
    endif()
    add_test(NAME faults/${case}/${interp}
             COMMAND ${Python3_EXECUTABLE} ${integration}/test_faults.py
                     --bin-dir ${bin_dir} --interp ${interp} --manifest ${manifest}
                     --case ${case} ${args})
    set_tests_properties(faults/${case}/${interp} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
  endforeach()
endforeach()
# The deleted/replaced executable needs a static interpreter it can copy.
# (Registered even when the manifest lacks it, as above.)
add_test(NAME faults/deleted_exe/debian12-3.11
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_faults.py
                 --bin-dir ${bin_dir} --interp debian12-3.11 --manifest ${manifest}
                 --case deleted_exe)
set_tests_properties(faults/deleted_exe/debian12-3.11 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
# An --enable-shared interpreter (pyenv) bind-mounted or copied into a chroot.
foreach(interp IN ITEMS pyenv-3.12.1)
  add_test(NAME faults/chroot_libpython/${interp}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_faults.py
                   --bin-dir ${bin_dir} --interp ${interp} --manifest ${manifest}
                   --case chroot_libpython)
  set_tests_properties(faults/chroot_libpython/${interp} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
endforeach()

add_test(NAME cli-errors
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_cli_errors.py
                 --bin-dir ${bin_dir} --manifest ${manifest})
set_tests_properties(cli-errors PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)

# A hostile local user (docs/reliability.md): a setcap'd or setuid-root copy
# run as nobody, and output paths that are not ours to replace.
foreach(group capability setuid output)
  add_test(NAME hostile-user/${group}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_hostile_user.py
                   --bin-dir ${bin_dir} --manifest ${manifest} --group ${group})
  set_tests_properties(hostile-user/${group} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()

# A hostile target (docs/reliability.md): crafted, sparse and swapped files
# behind its maps; a line-table bomb in its memory.
foreach(group files memory)
  add_test(NAME hostile-target/${group}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_hostile_target.py
                   --bin-dir ${bin_dir} --manifest ${manifest} --group ${group})
  set_tests_properties(hostile-target/${group} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()

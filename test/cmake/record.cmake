# record against every provisioned interpreter: accuracy, hot lines, launch,
# Ctrl-C, SIGTERM, target exit (test/integration/test_record.py).
foreach(name IN LISTS interpreters)
  foreach(mode nonblocking blocking)
    set(extra "")
    if(mode STREQUAL "blocking")
      set(extra --blocking)
    endif()
    add_test(NAME record/${name}/${mode}
             COMMAND ${Python3_EXECUTABLE} ${integration}/test_record.py
                     --bin-dir ${bin_dir} --interp ${name} --manifest ${manifest} ${extra})
    set_tests_properties(record/${name}/${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
  endforeach()
endforeach()

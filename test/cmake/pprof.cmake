# SPDX-License-Identifier: Apache-2.0
# The pprof writer's golden file read by the real `go tool pprof` (Debian's
# golang-go, installed by test/tools/go.sh): top functions and their sample
# counts, lines, thread labels, stacks leaf first. Without Go the test prints
# "SKIP: <reason>" and exits 77.
add_test(NAME writers/pprof-go-tool
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_pprof_tool.py
                 ${CMAKE_CURRENT_SOURCE_DIR}/golden/pprof.pb.gz)
set_tests_properties(writers/pprof-go-tool PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)

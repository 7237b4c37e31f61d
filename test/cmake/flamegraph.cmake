# SPDX-License-Identifier: Apache-2.0
# The SVG flame graph's golden files in headless Chromium: rendering, a real
# click to zoom, reset, search and hover. Tools come from
# test/tools/browser.sh; without them the test prints "SKIP: <reason>" and
# exits 77.
find_program(PYFLAME_NODE node)
if(PYFLAME_NODE)
  add_test(NAME writers/flamegraph-browser
           COMMAND ${PYFLAME_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/browser/flamegraph_test.mjs
                   ${CMAKE_CURRENT_SOURCE_DIR}/golden/flamegraph.svg
                   ${CMAKE_CURRENT_SOURCE_DIR}/golden/flamegraph_threads.svg
                   ${CMAKE_CURRENT_SOURCE_DIR}/golden/flamegraph_empty.svg)
else()
  add_test(NAME writers/flamegraph-browser
           COMMAND sh -c "echo 'SKIP: node not found (install nodejs, then run test/tools/browser.sh)'; exit 77")
endif()
set_tests_properties(writers/flamegraph-browser PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

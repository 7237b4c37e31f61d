# SPDX-License-Identifier: Apache-2.0
# The speedscope writer's golden files against the format's published schema
# and in the real speedscope viewer (headless Chromium). Tools come from
# test/tools/browser.sh; without them the tests print "SKIP: <reason>" and
# exit 77.
set(speedscope_golden ${CMAKE_CURRENT_SOURCE_DIR}/golden)
set(speedscope_scripts ${CMAKE_CURRENT_SOURCE_DIR}/browser)
find_program(PYFLAME_NODE node)

if(PYFLAME_NODE)
  add_test(NAME writers/speedscope-schema
           COMMAND ${PYFLAME_NODE} ${speedscope_scripts}/speedscope_schema.mjs
                   ${speedscope_golden}/speedscope.json
                   ${speedscope_golden}/speedscope_aggregated.json
                   ${speedscope_golden}/speedscope_empty.json)
  # The fixture's main thread spends 50 samples of 10 ms in hot().
  add_test(NAME writers/speedscope-viewer
           COMMAND ${PYFLAME_NODE} ${speedscope_scripts}/speedscope_viewer.mjs
                   ${speedscope_golden}/speedscope.json
                   ${speedscope_golden}/speedscope_empty.json
                   --self hot=500.00ms)
else()
  foreach(name schema viewer)
    add_test(NAME writers/speedscope-${name}
             COMMAND sh -c "echo 'SKIP: node not found (install nodejs, then run test/tools/browser.sh)'; exit 77")
  endforeach()
endif()
set_tests_properties(writers/speedscope-schema PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
set_tests_properties(writers/speedscope-viewer PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)

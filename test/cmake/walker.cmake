# SPDX-License-Identifier: Apache-2.0
# The walker over fake images, per version: each test program links one
# version's layout table and builds its images with that same table
# (test/walker/). The walker's fuzz target is in test/fuzz/.
add_library(pyflame_fake_image STATIC ${CMAKE_CURRENT_SOURCE_DIR}/walker/fake_image.cc
            ${CMAKE_CURRENT_SOURCE_DIR}/walker/fake_line_table.cc)
target_link_libraries(pyflame_fake_image PUBLIC pyflame_walker pyflame_core)
foreach(minor IN LISTS PYFLAME_VERSION_MINORS)
  string(REPLACE "." "_" id "${minor}")
  add_executable(walker_image_test_${id} ${CMAKE_CURRENT_SOURCE_DIR}/walker/walker_image_test.cc)
  target_link_libraries(walker_image_test_${id} PRIVATE pyflame_fake_image pyflame_layout_${id})
  add_test(NAME walker-image/${minor} COMMAND walker_image_test_${id})
endforeach()

# SPDX-License-Identifier: Apache-2.0
# Fuzz targets: corpus replays as regular tests, plus a time-boxed libFuzzer
# run when clang provides it (test/fuzz/CMakeLists.txt).
add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/fuzz ${CMAKE_CURRENT_BINARY_DIR}/fuzz)

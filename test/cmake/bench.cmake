# SPDX-License-Identifier: Apache-2.0
# The benchmark's C++ program (vm_readv_floor), built into the test binary
# directory. No CTest case: benchmarks are run by scripts/bench.sh, not by
# the test command.
add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/bench ${CMAKE_CURRENT_BINARY_DIR}/bench)

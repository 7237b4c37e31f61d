// SPDX-License-Identifier: Apache-2.0
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "test/fuzz/fuzz_input.h"

namespace pyflame::fuzz {

void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz check failed: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

std::string input_as_file(const uint8_t* data, size_t size) {
  static const int fd = [] {
    int f = memfd_create("pyflame-fuzz-input", MFD_CLOEXEC);
    if (f < 0) fail("memfd_create");
    return f;
  }();
  if (ftruncate(fd, 0) != 0) fail("ftruncate");
  for (size_t done = 0; done < size;) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) fail("pwrite");
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace pyflame::fuzz

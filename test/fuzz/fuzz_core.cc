// SPDX-License-Identifier: Apache-2.0
// Fuzz target: core::CoreFile over arbitrary file contents.
//
// A core file comes from the user's disk and the target's memory: one that
// is not a whole x86-64 core must be refused with core::Error; one that is
// accepted must answer every query (its maps, threads and any read) from
// within the file and the files it names, never past them. Each input is
// written to one memfd and opened as /proc/self/fd/N.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/target/core_file.h"
#include "test/fuzz/fuzz_input.h"

namespace {

int input_fd() {
  static int fd = [] {
    int f = memfd_create("pyflame-fuzz-core", MFD_CLOEXEC);
    if (f < 0) pyflame::fuzz::fail("memfd_create");
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = input_fd();
  if (ftruncate(fd, 0) != 0) pyflame::fuzz::fail("ftruncate");
  for (size_t done = 0; done < size;) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) pyflame::fuzz::fail("pwrite");
    done += static_cast<size_t>(n);
  }
  try {
    pyflame::core::CoreFile core("/proc/self/fd/" + std::to_string(fd), {});
    (void)core.describe();
    if (core.threads().empty()) pyflame::fuzz::fail("a core accepted without a thread");
    std::vector<std::byte> buf(4096);
    for (const pyflame::core::Mapping& m : core.maps()) {
      if (m.end <= m.start) pyflame::fuzz::fail("an empty or inverted mapping");
      for (uint64_t at : {m.start, m.end - 1, m.start + (m.end - m.start) / 2}) {
        const size_t got = core.read_prefix(pyflame::core::RemoteAddr(at), buf);
        if (got > buf.size()) pyflame::fuzz::fail("read_prefix beyond its buffer");
      }
    }
    (void)core.read(pyflame::core::RemoteAddr(UINT64_MAX - 8), buf);
    (void)core.unverified_files();
  } catch (const pyflame::core::Error&) {
    // Refusing a malformed core is the right answer.
  }
  return 0;
}

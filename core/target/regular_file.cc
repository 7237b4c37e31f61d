// SPDX-License-Identifier: Apache-2.0
#include "core/target/regular_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace pyflame::core {

int open_regular_file(const std::string& path, bool follow, struct stat& st) {
  // A look before opening: opening a device can do things; opening a file
  // that is not the one wanted is refused by the caller's identity check.
  if ((follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st)) != 0) return -1;
  if (!S_ISREG(st.st_mode)) {
    errno = S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
    return -1;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return -1;
  struct stat opened;
  if (::fstat(fd, &opened) != 0 || !S_ISREG(opened.st_mode) || opened.st_dev != st.st_dev ||
      opened.st_ino != st.st_ino) {
    ::close(fd);
    errno = ESTALE;
    return -1;
  }
  return fd;
}

bool read_exact_at(int fd, uint64_t offset, void* into, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, static_cast<char*>(into) + done, size - done,
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool is_executable_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace pyflame::core

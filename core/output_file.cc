#include "core/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"

namespace pyflame::core {

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  if (base.empty())
    throw Error(ExitCode::kUsage, fmt::format("pyflame: output path {} names a directory, not a file", path_));
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw Error(ExitCode::kUsage, fmt::format("pyflame: output path {} is a directory", path_));
  // mkstemp in the same directory: rename() within one file system is atomic.
  std::string pattern = (slash == std::string::npos ? std::string() : dir) + "." + base + ".XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0)
    throw Error(ExitCode::kUsage,
                fmt::format("pyflame: cannot write the output file {}: {} (in directory {})", path_,
                            std::strerror(errno), dir));
  temp_path_ = name.data();
  ::fchmod(fd_, 0644);  // mkstemp's 0600 would surprise whoever reads the profile
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void OutputFile::commit(std::string_view contents) {
  auto fail = [&](const char* what) {
    throw Error(ExitCode::kFailure, fmt::format("pyflame: {} {}: {}", what, path_, std::strerror(errno)));
  };
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd_, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot write");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0) fail("cannot sync");
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("cannot rename the profile to");
  temp_path_.clear();
}

}  // namespace pyflame::core

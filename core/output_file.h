// A profile file that is always whole on disk: written to a temporary file
// in the destination's directory and renamed over the destination.
#pragma once

#include <string>
#include <string_view>

namespace pyflame::core {

class OutputFile {
 public:
  // Creates the temporary file now, so that an unwritable path fails before
  // any sampling starts; throws Error (usage) with the reason.
  explicit OutputFile(std::string path);
  ~OutputFile();  // removes the temporary file unless commit() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes `contents`, syncs and renames into place; throws Error on failure.
  void commit(std::string_view contents);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

}  // namespace pyflame::core

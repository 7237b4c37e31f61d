// SPDX-License-Identifier: Apache-2.0
#include "core/target/maps.h"

#include <charconv>
#include <cstdint>

namespace pyflame::core {
namespace {

// A cursor over one line; each take_* consumes a token or fails.
class LineCursor {
 public:
  explicit LineCursor(std::string_view s) : rest_(s) {}

  std::optional<uint64_t> take_hex(char terminator) {
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(rest_.data(), rest_.data() + rest_.size(), value, 16);
    if (ec != std::errc() || ptr == rest_.data()) return std::nullopt;
    rest_.remove_prefix(static_cast<size_t>(ptr - rest_.data()));
    if (terminator != 0) {
      if (rest_.empty() || rest_.front() != terminator) return std::nullopt;
      rest_.remove_prefix(1);
    }
    return value;
  }
  std::optional<uint64_t> take_dec() {
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(rest_.data(), rest_.data() + rest_.size(), value, 10);
    if (ec != std::errc() || ptr == rest_.data()) return std::nullopt;
    rest_.remove_prefix(static_cast<size_t>(ptr - rest_.data()));
    return value;
  }
  std::optional<std::string_view> take_word() {
    skip_spaces();
    size_t n = rest_.find(' ');
    if (n == 0) return std::nullopt;
    std::string_view word = rest_.substr(0, n);
    rest_.remove_prefix(word.size());
    return word;
  }
  void skip_spaces() {
    while (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

std::optional<Mapping> parse_line(std::string_view line) {
  LineCursor c(line);
  Mapping m;
  auto start = c.take_hex('-');
  auto end = c.take_hex(' ');
  if (!start || !end || *end < *start) return std::nullopt;
  m.start = *start;
  m.end = *end;
  auto perms = c.take_word();
  if (!perms || perms->size() < 3) return std::nullopt;
  m.readable = (*perms)[0] == 'r';
  m.writable = (*perms)[1] == 'w';
  m.executable = (*perms)[2] == 'x';
  c.skip_spaces();
  auto offset = c.take_hex(' ');
  if (!offset) return std::nullopt;
  m.offset = *offset;
  auto major = c.take_hex(':');  // device, "fd:01"
  if (!major || *major > UINT32_MAX) return std::nullopt;
  auto minor = c.take_hex(' ');
  if (!minor || *minor > UINT32_MAX) return std::nullopt;
  m.dev_major = static_cast<uint32_t>(*major);
  m.dev_minor = static_cast<uint32_t>(*minor);
  c.skip_spaces();
  auto inode = c.take_dec();
  if (!inode) return std::nullopt;
  m.inode = *inode;
  c.skip_spaces();
  m.path = std::string(c.rest());
  return m;
}

}  // namespace

std::vector<Mapping> parse_maps(std::string_view text) {
  std::vector<Mapping> maps;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (auto m = parse_line(line)) maps.push_back(std::move(*m));
  }
  return maps;
}

std::string_view strip_deleted(std::string_view path) {
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() && path.substr(path.size() - kDeleted.size()) == kDeleted)
    path.remove_suffix(kDeleted.size());
  return path;
}

}  // namespace pyflame::core

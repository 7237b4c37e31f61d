// SPDX-License-Identifier: Apache-2.0
#include "core/target/process_tree.h"

#include <dirent.h>
#include <sys/stat.h>

#include <charconv>
#include <deque>
#include <set>

#include <fmt/format.h>

#include "core/target/process.h"

namespace pyflame::core {

std::optional<ExeIdentity> exe_identity(pid_t pid) {
  struct stat st;
  if (::stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) != 0) return std::nullopt;
  return ExeIdentity{st.st_dev, st.st_ino};
}

std::optional<uint64_t> process_start_time(pid_t pid) {
  auto stat = read_text_file(fmt::format("/proc/{}/stat", pid));
  if (!stat) return std::nullopt;
  return stat_number(*stat, 22);
}

std::string process_command_line(pid_t pid, size_t limit) {
  std::string text = read_text_file(fmt::format("/proc/{}/cmdline", pid)).value_or("");
  while (!text.empty() && text.back() == '\0') text.pop_back();
  if (text.empty()) {
    std::string comm = read_text_file(fmt::format("/proc/{}/comm", pid)).value_or("?");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    text = "[" + comm + "]";
  }
  for (char& c : text) {
    if (c == '\0') c = ' ';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > limit) {
    text.resize(limit);
    // Not in the middle of a UTF-8 sequence.
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xc0) == 0x80) text.pop_back();
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xc0) text.pop_back();
    text += "...";
  }
  return text;
}

ProcessTree::ProcessTree(pid_t root) : root_(root) {
  known_[root] = process_start_time(root).value_or(0);
}

void ProcessTree::children_of(pid_t pid, std::vector<pid_t>& into) const {
  // Each thread lists the children it forked itself.
  DIR* dir = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (dir == nullptr) return;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    auto text = read_text_file(fmt::format("/proc/{}/task/{}/children", pid, entry->d_name));
    if (!text) continue;
    const char* p = text->data();
    const char* end = p + text->size();
    while (p < end) {
      pid_t child = 0;
      auto [next, ec] = std::from_chars(p, end, child);
      if (ec == std::errc() && child > 0) into.push_back(child);
      p = next == p ? p + 1 : next;
    }
  }
  ::closedir(dir);
}

std::vector<ProcessKey> ProcessTree::discover() {
  std::vector<ProcessKey> found;
  // Breadth first from every process known alive: parents come before
  // their children.
  std::deque<pid_t> queue;
  for (auto it = known_.begin(); it != known_.end();) {
    std::optional<uint64_t> start = process_start_time(it->first);
    if (it->first != root_ && (!start || *start != it->second)) {
      it = known_.erase(it);  // gone (or its PID taken by another process)
      continue;
    }
    queue.push_back(it->first);
    ++it;
  }
  std::set<pid_t> visited(queue.begin(), queue.end());
  std::vector<pid_t> children;
  while (!queue.empty()) {
    pid_t pid = queue.front();
    queue.pop_front();
    children.clear();
    children_of(pid, children);
    for (pid_t child : children) {
      if (!visited.insert(child).second) continue;
      std::optional<uint64_t> start = process_start_time(child);
      if (!start) continue;  // already gone
      if (known_.size() >= kMaxProcesses) {
        over_limit_ = true;
        continue;
      }
      known_[child] = *start;
      found.push_back({child, *start});
      queue.push_back(child);
    }
  }
  return found;
}

}  // namespace pyflame::core

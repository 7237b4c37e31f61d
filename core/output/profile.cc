// SPDX-License-Identifier: Apache-2.0
#include "core/output/profile.h"

#include <fmt/format.h>

#include <functional>

namespace pyflame::core {

uint64_t Profile::total_samples() const {
  uint64_t total = 0;
  for (const ProfileStack& s : stacks) total += s.count;
  return total;
}

std::string thread_label(const ProfileThread& thread) {
  std::string label = thread.name.empty() ? std::string("thread")
                                          : fmt::format("thread '{}'", thread.name);
  if (thread.native_id) return fmt::format("{} (tid {})", label, *thread.native_id);
  return fmt::format("{} (ident {:#x})", label, thread.thread_id);
}

std::string process_label(const ProfileProcess& process) {
  return fmt::format("process {}: {}", process.pid, process.command);
}

std::vector<std::string> root_labels(const Profile& profile, const ProfileThread& thread) {
  std::vector<std::string> labels;
  if (profile.process_roots && thread.process < profile.processes.size())
    labels.push_back(process_label(profile.processes[thread.process]));
  if (profile.thread_roots) labels.push_back(thread_label(thread));
  return labels;
}

std::string frame_label(const ProfileFrame& frame) {
  if (frame.native()) {
    if (frame.library.empty()) return frame.function;  // a marker, in no file
    return fmt::format("{} [{}]", frame.function, library_file_name(frame.library));
  }
  if (frame.line > 0) return fmt::format("{} ({}:{})", frame.function, frame.filename, frame.line);
  return fmt::format("{} ({})", frame.function, frame.filename);
}

size_t ProfileBuilder::KeyHash::operator()(const std::vector<uint32_t>& key) const noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t v : key) {
    h ^= v;
    h *= 0x100000001b3ull;
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

size_t ProfileBuilder::FrameHash::operator()(const ProfileFrame& f) const noexcept {
  // Every field that equality compares takes part.
  size_t h = std::hash<std::string>()(f.function);
  h = h * 31 + std::hash<std::string>()(f.filename);
  h = h * 31 + std::hash<std::string>()(f.library);
  return h * 31 + std::hash<int>()(f.line);
}

uint32_t ProfileBuilder::intern_frame(const Frame& frame, uint32_t process) {
  const int line = frame.line.value_or(0);
  if (frame.code_key != 0) {
    if (auto it = code_line_ids_.find({frame.code_key, line, process}); it != code_line_ids_.end())
      return it->second;
  }
  ProfileFrame key{std::string(frame.qualname ? *frame.qualname : frame.function),
                   std::string(frame.filename), line, std::string(frame.library),
                   frame.kind == FrameKind::kNative};
  auto [it, added] = frame_ids_.try_emplace(key, static_cast<uint32_t>(profile_.frames.size()));
  if (added) profile_.frames.push_back(std::move(key));
  if (frame.code_key != 0) code_line_ids_.emplace(CodeLine{frame.code_key, line, process}, it->second);
  return it->second;
}

uint32_t ProfileBuilder::intern_thread(const ThreadSample& thread, uint32_t process) {
  auto [it, added] = thread_ids_.try_emplace({process, thread.thread_id, thread.native_id.value_or(-1)},
                                             static_cast<uint32_t>(profile_.threads.size()));
  if (added)
    profile_.threads.push_back({process, thread.thread_id, thread.native_id, thread.name.value_or("")});
  else if (thread.name && profile_.threads[it->second].name.empty())
    profile_.threads[it->second].name = *thread.name;
  return it->second;
}

uint32_t ProfileBuilder::add(const ThreadSample& thread, uint64_t count, uint32_t process) {
  const uint32_t thread_index = intern_thread(thread, process);
  if (last_.size() <= thread_index) last_.resize(thread_index + 1);
  LastStack& last = last_[thread_index];
  bool same = last.valid && last.frames.size() == thread.frames.size();
  for (size_t i = 0; same && i < thread.frames.size(); ++i) {
    const Frame& f = thread.frames[i];
    same = f.code_key != 0 && last.frames[i].first == f.code_key &&
           last.frames[i].second == f.line.value_or(0);
  }
  if (same) {
    profile_.stacks[last.stack].count += count;
    return last.stack;
  }
  key_.clear();
  key_.push_back(thread_index);
  for (auto f = thread.frames.rbegin(); f != thread.frames.rend(); ++f)
    key_.push_back(intern_frame(*f, process));
  auto it = stack_ids_.find(key_);
  if (it == stack_ids_.end()) {
    ProfileStack stack;
    stack.thread = key_[0];
    stack.frames.assign(key_.begin() + 1, key_.end());
    it = stack_ids_.emplace(key_, static_cast<uint32_t>(profile_.stacks.size())).first;
    profile_.stacks.push_back(std::move(stack));
  }
  profile_.stacks[it->second].count += count;
  last.frames.clear();
  last.valid = true;
  for (const Frame& f : thread.frames) {
    if (f.code_key == 0) last.valid = false;  // only frames with keys can be compared
    last.frames.emplace_back(f.code_key, f.line.value_or(0));
  }
  last.stack = it->second;
  return it->second;
}

}  // namespace pyflame::core

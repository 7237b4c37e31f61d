#include "core/thread_states.h"

#include <fcntl.h>
#include <unistd.h>

#include <string_view>
#include <vector>

namespace pyflame::core {

ThreadStates::~ThreadStates() {
  for (auto& [tid, t] : tasks_)
    if (t.stat_fd >= 0) ::close(t.stat_fd);
}

std::optional<char> ThreadStates::read_state(Task& t) {
  char buf[512];
  ssize_t n = ::pread(t.stat_fd, buf, sizeof buf, 0);
  if (n <= 0) return std::nullopt;
  return state_from_stat(std::string_view(buf, static_cast<size_t>(n)));
}

ThreadStates::Task* ThreadStates::task(pid_t tid) {
  if (auto it = tasks_.find(tid); it != tasks_.end()) return &it->second;
  std::string dir = "/proc/" + std::to_string(process_.pid()) + "/task/" + std::to_string(tid);
  Task t;
  t.stat_fd = ::open((dir + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (t.stat_fd < 0) return nullptr;
  auto state = read_state(t);
  if (!state) {
    ::close(t.stat_fd);
    return nullptr;
  }
  t.state = *state;
  if (auto comm = read_text_file(dir + "/comm")) {
    while (!comm->empty() && comm->back() == '\n') comm->pop_back();
    t.name = std::move(*comm);
  }
  return &tasks_.emplace(tid, std::move(t)).first->second;
}

void ThreadStates::forget(pid_t tid) {
  auto it = tasks_.find(tid);
  if (it == tasks_.end()) return;
  ::close(it->second.stat_fd);
  tasks_.erase(it);
  std::erase_if(tid_of_ident_, [tid](const auto& entry) { return entry.second == tid; });
}

void ThreadStates::read_states() {
  std::vector<pid_t> gone;
  for (auto& [tid, t] : tasks_) {
    if (auto state = read_state(t)) {
      t.state = *state;
    } else {
      gone.push_back(tid);
    }
  }
  for (pid_t tid : gone) forget(tid);
}

void ThreadStates::discover() {
  read_states();
  for (pid_t tid : task_ids(process_.pid())) task(tid);  // opens the new ones
}

void ThreadStates::fill(Snapshot& snapshot) {
  // Threads whose TID the interpreter does not record: look them up once.
  std::vector<uint64_t> unresolved;
  for (ThreadSample& t : snapshot.threads) {
    if (t.native_id) continue;
    if (auto it = tid_of_ident_.find(t.thread_id); it != tid_of_ident_.end()) {
      t.native_id = it->second;
    } else {
      unresolved.push_back(t.thread_id);
    }
  }
  if (!unresolved.empty()) {
    std::vector<TaskInfo> all = process_.tasks();
    auto tids = resolver_.resolve(process_, unresolved, all);
    for (size_t i = 0; i < unresolved.size(); ++i)
      if (tids[i]) tid_of_ident_[unresolved[i]] = *tids[i];
    for (ThreadSample& t : snapshot.threads)
      if (!t.native_id)
        if (auto it = tid_of_ident_.find(t.thread_id); it != tid_of_ident_.end())
          t.native_id = it->second;
  }
  for (ThreadSample& t : snapshot.threads) {
    if (!t.native_id) continue;
    Task* task = this->task(static_cast<pid_t>(*t.native_id));
    if (task == nullptr) continue;
    if (!task->name.empty()) t.name = task->name;
    t.idle = task->state != 'R';
  }
}

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
#include "core/target/thread_states.h"

#include <fcntl.h>
#include <cerrno>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/errors.h"

namespace pyflame::core {
namespace {

// The last number of the NSpid line of a /proc/.../status: the TID in the
// thread's own (innermost) PID namespace; `count` gets how many there are.
std::optional<pid_t> innermost_nspid(std::string_view status, size_t& count) {
  count = 0;
  size_t at = status.find("\nNSpid:");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view line = status.substr(at + 7);
  line = line.substr(0, line.find('\n'));
  std::optional<pid_t> last;
  while (!line.empty()) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    pid_t value = 0;
    auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
    if (ec != std::errc() || ptr == line.data()) break;
    line.remove_prefix(static_cast<size_t>(ptr - line.data()));
    last = value;
    ++count;
  }
  return last;
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// What a thread's stack was, functions and lines, as one number; 0 when
// it cannot be told (a torn stack, or a frame whose code is unknown), which
// fill() takes as moved.
uint64_t stack_signature(const ThreadSample& t) {
  if (t.torn) return 0;
  uint64_t h = mix(t.frames.size() * 2 + (t.truncated ? 1 : 0));
  for (const Frame& f : t.frames) {
    if (f.code_key == 0) return 0;
    h = mix(h ^ f.code_key);
    h = mix(h ^ static_cast<uint32_t>(f.line.value_or(-1)));
  }
  return h == 0 ? 1 : h;
}

}  // namespace

ThreadStates::ThreadStates(const Process& process) : process_(process) {
  // NSpid lists one TID per PID namespace from ours down to the target's:
  // more than one means the target sees other TIDs than we do.
  auto status = read_text_file("/proc/" + std::to_string(process_.pid()) + "/status");
  size_t levels = 0;
  if (status) innermost_nspid(*status, levels);
  other_namespace_ = levels > 1;
}

void ThreadStates::rescan() {
  const std::string task_dir = "/proc/" + std::to_string(process_.pid()) + "/task/";
  std::vector<pid_t> tids;
  try {
    tids = task_ids(process_.pid());
  } catch (const Error&) {
    return;  // gone: the caller finds out
  }
  for (pid_t tid : tids) {
    if (nspid_read_.count(tid)) continue;
    auto status = read_text_file(task_dir + std::to_string(tid) + "/status");
    if (!status) continue;  // exited meanwhile
    size_t levels = 0;
    if (auto inner = innermost_nspid(*status, levels)) {
      host_tid_[*inner] = tid;  // a reused target TID now names this thread
      nspid_read_.insert(tid);
    }
  }
}

std::optional<pid_t> ThreadStates::host_tid(pid_t target_tid, bool& rescanned) {
  if (!other_namespace_) return target_tid;
  auto it = host_tid_.find(target_tid);
  if (it == host_tid_.end() && !rescanned) {
    rescan();  // a thread not seen before
    rescanned = true;
    it = host_tid_.find(target_tid);
  }
  if (it == host_tid_.end()) return std::nullopt;
  return it->second;
}

ThreadStates::~ThreadStates() {
  for (auto& [tid, t] : tasks_)
    if (t.stat_fd >= 0) ::close(t.stat_fd);
}

std::string ThreadStates::stat_path(pid_t tid) const {
  return "/proc/" + std::to_string(process_.pid()) + "/task/" + std::to_string(tid) + "/stat";
}

std::optional<char> ThreadStates::read_state(pid_t tid, Task& t) {
  char buf[512];
  ssize_t n;
  if (t.stat_fd >= 0) {
    n = ::pread(t.stat_fd, buf, sizeof buf, 0);
  } else {
    int fd = ::open(stat_path(tid).c_str(), O_RDONLY | O_CLOEXEC);
    // Out of descriptors is not "gone": keep the last state known.
    if (fd < 0) return errno == EMFILE || errno == ENFILE ? std::optional<char>(t.state) : std::nullopt;
    n = ::pread(fd, buf, sizeof buf, 0);
    ::close(fd);
  }
  if (n <= 0) return std::nullopt;
  return state_from_stat(std::string_view(buf, static_cast<size_t>(n)));
}

ThreadStates::Task* ThreadStates::task(pid_t tid, bool& created) {
  created = false;
  if (auto it = tasks_.find(tid); it != tasks_.end()) return &it->second;
  std::string dir = "/proc/" + std::to_string(process_.pid()) + "/task/" + std::to_string(tid);
  Task t;
  t.stat_fd = ::open((dir + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (t.stat_fd < 0) {
    // Gone; or out of descriptors (another part of pyflame, or the limit is
    // low): then read it the slow way, never report it as gone.
    if (errno != EMFILE && errno != ENFILE) return nullptr;
  } else if (kept_fds_ >= kMaxKeptFds) {
    ::close(t.stat_fd);
    t.stat_fd = -1;
  }
  auto state = read_state(tid, t);
  if (!state || *state == '?') {
    if (t.stat_fd >= 0) ::close(t.stat_fd);
    return nullptr;
  }
  if (t.stat_fd >= 0) ++kept_fds_;
  t.state = *state;
  if (auto comm = read_text_file(dir + "/comm")) {
    while (!comm->empty() && comm->back() == '\n') comm->pop_back();
    t.name = std::move(*comm);
  }
  created = true;
  return &tasks_.emplace(tid, std::move(t)).first->second;
}

void ThreadStates::forget(pid_t tid) {
  auto it = tasks_.find(tid);
  if (it == tasks_.end()) return;
  if (it->second.stat_fd >= 0) {
    ::close(it->second.stat_fd);
    --kept_fds_;
  }
  tasks_.erase(it);
  if (!other_namespace_) {
    std::erase_if(tid_of_ident_, [tid](const auto& entry) { return entry.second == tid; });
    return;
  }
  if (nspid_read_.erase(tid) == 0) return;
  pid_t inner = -1;
  for (const auto& [target_tid, ours] : host_tid_)
    if (ours == tid) inner = target_tid;
  host_tid_.erase(inner);
  std::erase_if(tid_of_ident_, [inner](const auto& entry) { return entry.second == inner; });
}

void ThreadStates::read_states() {
  std::vector<pid_t> gone;
  for (auto& [tid, t] : tasks_) {
    if (auto state = read_state(tid, t)) {
      t.state = *state;
    } else {
      gone.push_back(tid);
    }
  }
  for (pid_t tid : gone) forget(tid);
}

void ThreadStates::discover() {
  read_states();
  bool created;
  for (pid_t tid : task_ids(process_.pid())) task(tid, created);  // opens the new ones
}

void ThreadStates::note_waiting(const std::vector<pid_t>& tids) {
  for (pid_t tid : tids)
    if (auto it = tasks_.find(tid); it != tasks_.end()) it->second.state = 'S';
}

void ThreadStates::fill(Snapshot& snapshot, bool refresh) {
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
  bool rescanned = false;
  ++fills_;
  seen_ = 0;
  const Clock::time_point now = refresh ? Clock::now() : Clock::time_point{};
  if (!unresolved.empty()) {
    std::vector<TaskInfo> all = process_.tasks();
    if (other_namespace_) {
      // The target's pthreads hold its own TIDs: look for those.
      rescan();
      rescanned = true;
      std::unordered_map<pid_t, pid_t> inner_of;
      for (const auto& [inner, ours] : host_tid_) inner_of[ours] = inner;
      std::erase_if(all, [&](const TaskInfo& t) { return !inner_of.count(t.tid); });
      for (TaskInfo& t : all) t.tid = inner_of[t.tid];
    }
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
    // The interpreter's (or its pthread's) TID is in the target's namespace.
    auto ours = *t.native_id > 0 && *t.native_id <= INT32_MAX
                    ? host_tid(static_cast<pid_t>(*t.native_id), rescanned)
                    : std::nullopt;
    bool created = false;
    Task* task = ours ? this->task(*ours, created) : nullptr;
    if (task == nullptr && ours && other_namespace_ && !rescanned) {
      // A stale mapping (the target reused a TID): read the new one.
      rescan();
      rescanned = true;
      ours = host_tid(static_cast<pid_t>(*t.native_id), rescanned);
      task = ours ? this->task(*ours, created) : nullptr;
    }
    // Never a TID of the wrong namespace: without a mapping there is none.
    t.native_id = ours ? std::optional<int64_t>(*ours) : std::nullopt;
    if (task == nullptr) continue;
    if (!task->name.empty()) t.name = task->name;
    if (refresh && !refresh_state(*ours, *task, t, created, now)) {
      forget(*ours);  // gone since the walk: no state, as for a thread never found
      continue;
    }
    t.idle = task->state != 'R';
  }
  if (refresh && seen_ != tasks_.size()) {
    // Threads the interpreter no longer lists: their files are closed
    // and a reused TID is read afresh.
    unseen_.clear();
    for (const auto& [tid, task] : tasks_)
      if (task.seen != fills_) unseen_.push_back(tid);
    for (pid_t tid : unseen_) forget(tid);
  }
}

bool ThreadStates::refresh_state(pid_t tid, Task& task, const ThreadSample& t, bool created,
                                 Clock::time_point now) {
  const uint64_t stack = stack_signature(t);
  if (created) {
    // Just read. The first deadlines are spread over kStaleness (by TID),
    // so that the threads of a new target do not all come due in one
    // sample.
    const uint64_t spread = mix(static_cast<uint64_t>(tid)) >> 40;  // 24 bits
    task.due = now + std::chrono::duration_cast<Clock::duration>(kStaleness) * spread / (1 << 24);
    if (task.state == 'R') task.running = now;
  } else if (task.state == 'R' || t.holds_gil.value_or(false) || stack == 0 ||
             stack != task.stack || t.thread_id != task.thread_id || now >= task.due) {
    std::optional<char> state = read_state(tid, task);
    if (!state || *state == '?') return false;
    task.state = *state;
    if (task.state == 'R') {
      task.running = now;
    } else {
      // Waiting: read again once it has waited as long again as it has
      // since it was last read running (soon, if that was a moment ago),
      // at most kStaleness on.
      task.due = now + std::min<Clock::duration>(now - task.running, kStaleness);
    }
  }
  task.stack = stack;
  task.thread_id = t.thread_id;
  if (task.seen != fills_) ++seen_;
  task.seen = fills_;
  return true;
}

}  // namespace pyflame::core

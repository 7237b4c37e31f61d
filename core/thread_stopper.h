// --blocking: stops every thread of the target for a consistent snapshot.
#pragma once

#include <sys/types.h>

#include <vector>

namespace pyflame::core {

// Seizes and interrupts every thread of `pid` on construction and detaches
// (which resumes them) on destruction: RAII, so no exit path leaves the
// target stopped. If the profiler itself dies, the kernel detaches for us.
class ThreadStopper {
 public:
  explicit ThreadStopper(pid_t pid);
  ~ThreadStopper();
  ThreadStopper(const ThreadStopper&) = delete;
  ThreadStopper& operator=(const ThreadStopper&) = delete;

  size_t stopped_count() const { return stopped_.size(); }

 private:
  void resume_all();

  pid_t pid_;
  std::vector<pid_t> stopped_;
};

}  // namespace pyflame::core

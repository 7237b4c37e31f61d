// SPDX-License-Identifier: Apache-2.0
#include "core/cli/process_set.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include "core/cli/sampling_run.h"
#include "core/cli/sibling_stream.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/sampling/sampler.h"
#include "core/target/attach.h"
#include "core/target/process.h"
#include "core/target/python_binary.h"

namespace pyflame::core {
namespace {

using Clock = std::chrono::steady_clock;

// A process just started (or that just executed a program) may not show
// its interpreter yet: a shared build's libpython is mapped by the dynamic
// loader after the exec, and Py_Initialize takes a while. It is looked at
// again at each discovery until it does, for this long.
constexpr double kInterpreterPatienceSeconds = 10.0;
// While one is, discoveries come this much more often (kStartingDiscoveryHz)
// for its first second: a short script is sampled from its start.
constexpr double kStartingSeconds = 1.0;
constexpr double kFirstRetrySeconds = 0.005;
constexpr double kMaxRetrySeconds = 0.2;
// Refusals to stop a process in a row before it is left alone (another
// tracer has it); one now and then is a thread that is exiting.
constexpr int kMaxRefusals = 50;

}  // namespace

struct ProcessSet::Member {
  enum class State {
    kNew,       // not looked at yet, or after an exec
    kPending,   // not (yet) readable: looked at again at each discovery
    kSampled,   // our version: sampled here
    kStreamed,  // another version: a sibling reads it
    kLeft,      // not Python, or not readable: left alone until it executes a program
    kEnded,
  };

  ProcessKey key;
  bool is_root = false;
  State state = State::kNew;
  std::optional<ExeIdentity> exe;  // at the last look
  double since = 0;                // when it was first seen, or executed a program
  bool was_python = false;         // in the profile, before its latest exec
  std::string version;             // "3.11.7" once known
  std::string command;             // its command line, at the last look
  // The consumer's index of its profile process; a new one after each exec.
  std::optional<uint32_t> index;
  int refusals = 0;
  double next_look = 0;    // kPending: not looked at again before this
  double retry_delay = 0;  // kPending: the wait before that look
  // kSampled: declared in this order so that the sampler goes first.
  std::unique_ptr<Process> process;
  std::unique_ptr<Interpreter> interpreter;
  std::unique_ptr<Sampler> sampler;
  Snapshot snapshot;
  // kStreamed
  std::unique_ptr<SiblingStream> stream;
  double stream_began = 0;  // our elapsed seconds when it was started

  // Whether it runs another program than at the last look (an exec).
  bool executed_since_look() const {
    std::optional<ExeIdentity> now = exe_identity(key.pid);
    return now && exe && *now != *exe;
  }

  void let_go() {
    sampler.reset();
    interpreter.reset();
    process.reset();
    stream.reset();
  }
};

ProcessSet::ProcessSet(const PythonModule& module, const RunOptions& options, pid_t root,
                       SampleConsumer& consumer)
    : module_(module), options_(options), consumer_(consumer), tree_(root) {
  auto m = std::make_unique<Member>();
  m->key = {root, process_start_time(root).value_or(0)};
  m->is_root = true;
  members_.push_back(std::move(m));
  next_discovery_ = Clock::now();
}

ProcessSet::~ProcessSet() = default;

void ProcessSet::note(std::string line) {
  PYFLAME_DEBUG_LOG("{}", line);
  notes_.push_back(std::move(line));
}

bool ProcessSet::root_ended() const {
  const Member& root = *members_.front();
  return root.state == Member::State::kEnded || !process_alive(root.key.pid);
}

bool ProcessSet::root_profiled() const { return !root_version_.empty(); }

const std::string& ProcessSet::root_python_version() const { return root_version_; }

bool ProcessSet::discover(double elapsed) {
  // Ended processes are forgotten (their samples are the consumer's): a
  // tree that starts children without end keeps this list short.
  std::erase_if(members_, [](const std::unique_ptr<Member>& m) {
    return !m->is_root && m->state == Member::State::kEnded;
  });
  for (const ProcessKey& key : tree_.discover()) {
    auto m = std::make_unique<Member>();
    m->key = key;
    m->since = elapsed;
    members_.push_back(std::move(m));
  }
  if (tree_.over_limit() && !counts_.over_limit) {
    counts_.over_limit = true;
    note(fmt::format("pyflame: the process tree grew past {} processes; the ones beyond are not "
                     "profiled", ProcessTree::kMaxProcesses));
  }
  // Every member that is not being read: a first look, another look at
  // one not ready yet, and an exec by one left alone. Costs a stat each.
  // A bounded time of full looks per pass (at least one look): a target
  // that starts processes faster than they can be looked at delays them,
  // not the samples of the others.
  const Clock::time_point look_until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kLookSeconds));
  bool backlog = false, looked = false;
  using S = Member::State;
  for (auto& m : members_) {
    if (m->state != S::kLeft) continue;
    std::optional<ExeIdentity> exe = exe_identity(m->key.pid);
    if (!exe) {
      if (!process_alive(m->key.pid)) m->state = S::kEnded;
      continue;
    }
    if (m->exe && *exe == *m->exe) continue;
    m->state = S::kNew;  // it executed a program
    m->since = elapsed;
  }
  // New processes first (a forked worker is ready at once), then the ones
  // still starting, each at its own pace: an interpreter coming up is
  // looked at again after 5, 10, 20 ... ms, at most 200 ms apart.
  for (S pass : {S::kNew, S::kPending}) {
    for (auto& m : members_) {
      if (m->state != pass) continue;
      if (pass == S::kPending && elapsed < m->next_look) continue;
      if (looked && Clock::now() >= look_until) {
        backlog = true;
        continue;
      }
      looked = true;
      classify(*m, elapsed);
      if (m->state == S::kPending) {
        m->retry_delay = std::min(kMaxRetrySeconds, m->retry_delay > 0 ? 2 * m->retry_delay : kFirstRetrySeconds);
        m->next_look = elapsed + m->retry_delay;
      }
    }
  }
  bool starting = backlog;
  for (const auto& m : members_)
    starting = starting || (m->state == Member::State::kPending && elapsed - m->since < kStartingSeconds);
  return starting;
}

// Whether `process` runs an executable that links a libpython: Python
// whose interpreter is not mapped yet (the dynamic loader is at work).
bool ProcessSet::links_libpython(const Process& process) {
  try {
    std::shared_ptr<ElfFile> exe = binaries_.elf(process.open_executable(), process.exe_target_path());
    for (const std::string& lib : exe->dynamic().needed)
      if (lib.starts_with("libpython")) return true;
  } catch (const Error&) {
  }
  return false;
}

// Decides how `m` is read: here, by a sibling, or not at all (yet).
void ProcessSet::classify(Member& m, double elapsed) {
  using S = Member::State;
  const pid_t pid = m.key.pid;
  m.command = process_command_line(pid);
  m.exe = exe_identity(pid);
  m.version.clear();
  m.index.reset();  // another program: another root, once it gives a sample
  if (m.state != S::kPending) m.retry_delay = 0;  // a first look at this program
  auto leave = [&](uint64_t& count, std::optional<std::string> why) {
    m.let_go();
    m.state = S::kLeft;
    ++count;
    if (why) note(*why);
  };
  // Python of some version, but nothing to read yet (an interpreter not
  // up, a libpython not mapped): looked at again, for a while.
  bool starting = false;
  try {
    m.process = std::make_unique<Process>(pid);
    const PythonBinary binary = [&] {
      try {
        return PythonBinary::find(*m.process, &binaries_);
      } catch (const Error& e) {
        if (e.code() == ExitCode::kNotPython && links_libpython(*m.process)) starting = true;
        throw;
      }
    }();
    const PythonVersionId& v = binary.version();
    m.version = v.full;
    const BuildInfo& ours = module_.build_info();
    if (v.build() == ours.build()) {
      starting = true;  // until its interpreter is found
      m.interpreter = locate_interpreter(module_, *m.process, binary);
      m.sampler = std::make_unique<Sampler>(*m.process, *m.interpreter, options_.blocking,
                                            mode_needs_states(options_.mode));
      if (options_.native) m.sampler->enable_native(ours, options_.native_all);
      if (std::string read = m.interpreter->python_version(); !read.empty()) m.version = read;
      m.state = S::kSampled;
    } else {
      m.process.reset();
      std::optional<std::string> binary_path = find_sibling_binary(v.build());
      if (!binary_path) {
        leave(counts_.no_binary,
              fmt::format("pyflame: process {} ({}) runs {}, but pyflame{} is not "
                          "installed: not profiled (install the package pyflame{})",
                          pid, m.command, v.python(), v.build(), v.build()));
        return;
      }
      const size_t running = static_cast<size_t>(std::count_if(
          members_.begin(), members_.end(),
          [](const std::unique_ptr<Member>& other) { return other->state == S::kStreamed; }));
      if (running >= kMaxSiblings) {
        leave(counts_.unreadable,
              fmt::format("pyflame: process {} ({}) runs Python {}, but {} processes of other "
                          "versions are read already (at most {} siblings run at once): not profiled",
                          pid, m.command, v.full, running, kMaxSiblings));
        return;
      }
      m.stream = std::make_unique<SiblingStream>(*binary_path, pid, options_);
      m.stream_began = elapsed;
      m.state = S::kStreamed;
    }
  } catch (const Error& e) {
    PYFLAME_DEBUG_LOG("process {}: not read ({}): {}", pid, static_cast<int>(e.code()), e.what());
    m.let_go();
    if (!process_alive(pid)) {
      m.state = S::kEnded;
      return;
    }
    // Python of some version, but nothing to read yet: looked at again.
    const bool still_starting = starting && elapsed - m.since < kInterpreterPatienceSeconds;
    switch (e.code()) {
      case ExitCode::kNotPython:
      case ExitCode::kFailure:
        if (still_starting) {
          m.state = S::kPending;
          return;
        }
        if (!m.version.empty()) {
          leave(counts_.unreadable, fmt::format("pyflame: process {} ({}) runs Python {}, but its "
                                                "interpreter could not be read: {}",
                                                pid, m.command, m.version, e.what()));
        } else if (m.was_python) {
          m.was_python = false;
          leave(counts_.execed_away,
                fmt::format("pyflame: process {} executed {}, which is not Python; its samples "
                            "from before are kept", pid, m.command));
        } else {
          // A verdict until it executes another program.
          leave(counts_.not_python, std::nullopt);
        }
        return;
      case ExitCode::kTargetExited:
      case ExitCode::kNoSuchProcess:
        // Alive (checked above): a read of an interpreter still coming up
        // can fail without an errno, which reads as "exited". Ended for
        // good, it was never looked at again (seen: a sanitized launched
        // root, and forked children, never sampled).
        m.state = still_starting ? S::kPending : S::kEnded;
        return;
      default:
        leave(counts_.unreadable,
              fmt::format("pyflame: process {} ({}) is not profiled: {}", pid, m.command, e.what()));
        return;
    }
  }
  m.refusals = 0;
}

// A process is in the profile from its first sample: a fork that executes
// another program before it is sampled (subprocess.run of a compiler)
// leaves no root behind.
uint32_t ProcessSet::announce(Member& m) {
  if (m.index) return *m.index;
  m.index = next_index_++;
  m.was_python = true;
  if (m.state == Member::State::kStreamed) ++counts_.streamed;
  else ++counts_.sampled_here;
  if (m.is_root) root_version_ = m.version;
  consumer_.process_added(*m.index, ProfileProcess{m.key.pid, m.command, m.version});
  return *m.index;
}

void ProcessSet::sample_member(Member& m, double elapsed, Counters& counters, bool& any_ok) {
  bool ok = false;
  try {
    ok = m.sampler->sample(m.snapshot);
  } catch (const Error& e) {
    PYFLAME_DEBUG_LOG("process {}: sample failed: {}", m.key.pid, e.what());
    if (e.code() == ExitCode::kPermissionDenied && ++m.refusals >= kMaxRefusals &&
        process_alive(m.key.pid)) {
      m.let_go();
      m.state = Member::State::kLeft;
      ++counts_.unreadable;
      note(fmt::format("pyflame: process {} could not be stopped for {} samples in a row; left "
                       "alone from then on: {}", m.key.pid, kMaxRefusals, e.what()));
      return;
    }
  }
  if (!m.is_root) ++counts_.child_ticks;
  if (!ok) {
    ++counters.errors;
    if (!m.is_root) ++counts_.child_errors;
    // Gone, or another program: looked at again at once.
    if (!process_alive(m.key.pid)) {
      m.let_go();
      m.state = Member::State::kEnded;
    } else if (m.executed_since_look()) {
      m.let_go();
      m.state = Member::State::kNew;
      m.since = elapsed;
      classify(m, elapsed);
    }
    return;
  }
  m.refusals = 0;
  any_ok = true;
  counters.retries += m.snapshot.retries;
  for (const ThreadSample& thread : m.snapshot.threads) {
    if (!mode_keeps(options_.mode, thread)) continue;
    if (thread.torn) {
      ++counters.torn;
      continue;
    }
    ++counters.thread_samples;
    consumer_.thread_sample(thread, elapsed, announce(m));
  }
}

SiblingStream::SampleFn ProcessSet::forward_to_consumer(Member& m, Counters& counters) {
  return [this, &m, &counters](const ThreadSample& thread, double sibling_elapsed) {
    ++counters.thread_samples;
    consumer_.thread_sample(thread, m.stream_began + sibling_elapsed, announce(m));
  };
}

void ProcessSet::read_stream(Member& m, double elapsed, Counters& counters) {
  if (m.stream->poll(forward_to_consumer(m, counters))) return;
  // Ended: its counts join ours, and what it ended on decides what next.
  const SampleStreamReader& r = m.stream->reader();
  if (const std::optional<StreamCounters>& c = r.counters()) {
    counters.torn += c->torn;
    counters.errors += c->errors;
    counters.retries += c->retries;
    if (!m.is_root) {
      counts_.child_ticks += c->ticks;
      counts_.child_errors += c->errors;
    }
  }
  const std::optional<int> code = m.stream->exit_code();
  const std::string failure = m.stream->failure();
  const bool said_hello = r.pid().has_value();
  const std::optional<StreamEnding> ending = r.ending();
  m.let_go();
  if (!process_alive(m.key.pid)) {
    m.state = Member::State::kEnded;
    return;
  }
  if (finishing_) {
    m.state = Member::State::kEnded;
    return;
  }
  if (ending == StreamEnding::kExeced || m.executed_since_look()) {
    m.state = Member::State::kNew;
    m.since = elapsed;
    classify(m, elapsed);
    return;
  }
  m.state = Member::State::kLeft;
  ++counts_.unreadable;
  note(fmt::format("pyflame: process {} (Python {}): its reader pyflame{} ended{}{}", m.key.pid,
                   m.version, m.version.substr(0, m.version.rfind('.')),
                   !failure.empty() ? ": " + failure
                   : code          ? fmt::format(" with exit code {}", *code)
                                   : std::string(),
                   said_hello ? "" : " before it could read the process"));
}

bool ProcessSet::tick(double elapsed, Counters& counters) {
  if (Clock::now() >= next_discovery_) {
    // A process just started is looked at more often, for its first
    // second: sampling a short script from its start matters more than
    // the few reads this costs.
    const bool starting = discover(elapsed);
    next_discovery_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                         1.0 / (starting ? kStartingDiscoveryHz : kDiscoveryHz)));
  }
  ++counters.ticks;
  bool any_ok = false;
  // Indices, not iterators: classify() after an exec never adds members,
  // but keep this safe against it.
  for (size_t i = 0; i < members_.size(); ++i) {
    Member& m = *members_[i];
    if (m.state == Member::State::kSampled) sample_member(m, elapsed, counters, any_ok);
    else if (m.state == Member::State::kStreamed) {
      const uint64_t before = counters.thread_samples;
      read_stream(m, elapsed, counters);
      any_ok = any_ok || counters.thread_samples > before;
    }
  }
  return any_ok;
}

void ProcessSet::finish(double elapsed, Counters& counters, double seconds) {
  finishing_ = true;
  for (auto& m : members_)
    if (m->state == Member::State::kStreamed) m->stream->stop();
  for (auto& m : members_) {
    if (m->state != Member::State::kStreamed) continue;
    m->stream->drain(forward_to_consumer(*m, counters), seconds);
    read_stream(*m, elapsed, counters);  // takes its counts; the stream has ended
  }
  for (auto& m : members_) {
    if (m->sampler) {
      const MergeCounts& n = m->sampler->native_counts();
      native_.merged += n.merged;
      native_.cut_short += n.cut_short;
      native_.mismatched += n.mismatched;
    }
    m->let_go();
  }
}

}  // namespace pyflame::core

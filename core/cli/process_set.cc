// SPDX-License-Identifier: Apache-2.0
#include "core/cli/process_set.h"

#include <signal.h>

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
constexpr double kNotPythonYetSeconds = 1.0;
constexpr double kInterpreterPatienceSeconds = 10.0;
// Refusals to stop a process in a row before it is left alone (another
// tracer has it); one now and then is a thread that is exiting.
constexpr int kMaxRefusals = 50;

bool gone_or_zombie(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  auto stat = read_text_file(fmt::format("/proc/{}/stat", pid));
  if (!stat) return true;
  std::optional<char> state = state_from_stat(*stat);
  return state && (*state == 'Z' || *state == 'X');
}

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
  bool was_python = false;         // profiled before its latest exec
  std::string version;             // "3.11.7" once known
  // The consumer's index of its profile process; a new one after each exec.
  std::optional<uint32_t> index;
  int refusals = 0;
  // kSampled: declared in this order so that the sampler goes first.
  std::unique_ptr<Process> process;
  std::unique_ptr<Interpreter> interpreter;
  std::unique_ptr<Sampler> sampler;
  Snapshot snapshot;
  // kStreamed
  std::unique_ptr<SiblingStream> stream;
  double stream_began = 0;  // our elapsed seconds when it was started

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
  return root.state == Member::State::kEnded || gone_or_zombie(root.key.pid);
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
  for (auto& m : members_) {
    using S = Member::State;
    if (m->state == S::kEnded || m->state == S::kSampled || m->state == S::kStreamed) continue;
    if (m->state == S::kLeft) {
      std::optional<ExeIdentity> exe = exe_identity(m->key.pid);
      if (!exe) {
        if (gone_or_zombie(m->key.pid)) m->state = S::kEnded;
        continue;
      }
      if (m->exe && *exe == *m->exe) continue;
      m->state = S::kNew;  // it executed a program
      m->since = elapsed;
    }
    classify(*m, elapsed);
  }
  bool starting = false;
  for (const auto& m : members_)
    starting = starting || (m->state == Member::State::kPending && elapsed - m->since < kNotPythonYetSeconds);
  return starting;
}

// Decides how `m` is read: here, by a sibling, or not at all (yet).
void ProcessSet::classify(Member& m, double elapsed) {
  using S = Member::State;
  const pid_t pid = m.key.pid;
  const std::string command = process_command_line(pid);
  m.exe = exe_identity(pid);
  const bool young = elapsed - m.since < kNotPythonYetSeconds;
  auto leave = [&](uint64_t& count, std::optional<std::string> why) {
    m.let_go();
    m.state = S::kLeft;
    ++count;
    if (why) note(*why);
  };
  try {
    m.process = std::make_unique<Process>(pid);
    const PythonBinary binary = PythonBinary::find(*m.process);
    const PythonVersionId& v = binary.version();
    m.version = v.full;
    const BuildInfo& ours = module_.build_info();
    if (v.major == ours.major && v.minor == ours.minor) {
      m.interpreter = locate_interpreter(module_, *m.process);
      m.sampler = std::make_unique<Sampler>(*m.process, *m.interpreter, options_.blocking,
                                            mode_needs_states(options_.mode));
      if (options_.native) m.sampler->enable_native(ours, options_.native_all);
      m.version = m.interpreter->python_version();
      m.state = S::kSampled;
      ++counts_.sampled_here;
    } else {
      m.process.reset();
      std::optional<std::string> binary_path = find_sibling_binary(v.major, v.minor);
      if (!binary_path) {
        leave(counts_.no_binary,
              fmt::format("pyflame: process {} ({}) runs Python {}, but pyflame{}.{} is not "
                          "installed: not profiled (install the package pyflame{}.{})",
                          pid, command, v.full, v.major, v.minor, v.major, v.minor));
        return;
      }
      m.stream = std::make_unique<SiblingStream>(*binary_path, pid, options_);
      m.stream_began = elapsed;
      m.state = S::kStreamed;
      ++counts_.streamed;
    }
  } catch (const Error& e) {
    m.let_go();
    if (gone_or_zombie(pid)) {
      m.state = S::kEnded;
      return;
    }
    switch (e.code()) {
      case ExitCode::kNotPython:
      case ExitCode::kFailure:
        // Not Python, or not yet: an interpreter still starting.
        if (young || (m.version.size() > 0 && elapsed - m.since < kInterpreterPatienceSeconds)) {
          m.state = S::kPending;
          return;
        }
        if (!m.version.empty()) {
          leave(counts_.unreadable, fmt::format("pyflame: process {} ({}) runs Python {}, but its "
                                                "interpreter could not be read: {}",
                                                pid, command, m.version, e.what()));
        } else if (m.was_python) {
          leave(counts_.execed_away,
                fmt::format("pyflame: process {} executed {}, which is not Python; its samples "
                            "from before are kept", pid, command));
        } else {
          leave(counts_.not_python, std::nullopt);
        }
        return;
      case ExitCode::kTargetExited:
      case ExitCode::kNoSuchProcess:
        m.state = S::kEnded;
        return;
      default:
        leave(counts_.unreadable,
              fmt::format("pyflame: process {} ({}) is not profiled: {}", pid, command, e.what()));
        return;
    }
  }
  m.was_python = true;
  m.refusals = 0;
  ProfileProcess info{pid, command, m.version};
  m.index = next_index_++;
  if (m.is_root) root_version_ = m.version;
  consumer_.process_added(*m.index, info);
}

void ProcessSet::sample_member(Member& m, double elapsed, Counters& counters, bool& any_ok) {
  bool ok = false;
  try {
    ok = m.sampler->sample(m.snapshot);
  } catch (const Error& e) {
    PYFLAME_DEBUG_LOG("process {}: sample failed: {}", m.key.pid, e.what());
    if (e.code() == ExitCode::kPermissionDenied && ++m.refusals >= kMaxRefusals &&
        !gone_or_zombie(m.key.pid)) {
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
    if (gone_or_zombie(m.key.pid)) {
      m.let_go();
      m.state = Member::State::kEnded;
    } else if (std::optional<ExeIdentity> exe = exe_identity(m.key.pid); exe && m.exe && *exe != *m.exe) {
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
    consumer_.thread_sample(thread, elapsed, *m.index);
  }
}

SiblingStream::SampleFn ProcessSet::forward_to_consumer(const Member& m, Counters& counters) {
  return [this, &counters, index = *m.index, began = m.stream_began](const ThreadSample& thread,
                                                                       double sibling_elapsed) {
    ++counters.thread_samples;
    consumer_.thread_sample(thread, began + sibling_elapsed, index);
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
  if (gone_or_zombie(m.key.pid)) {
    m.state = Member::State::kEnded;
    return;
  }
  if (finishing_) {
    m.state = Member::State::kEnded;
    return;
  }
  if (ending == StreamEnding::kExeced ||
      (m.exe && exe_identity(m.key.pid) && *exe_identity(m.key.pid) != *m.exe)) {
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

// SPDX-License-Identifier: Apache-2.0
#include "core/cli/top.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "core/cli/record_stats.h"
#include "core/cli/stop_signals.h"
#include "core/cli/top_screen.h"
#include "core/errors.h"
#include "core/output/output_file.h"
#include "core/output/profile.h"
#include "core/output/top_table.h"
#include "core/target/privilege.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {
namespace {

const char* kHelp[] = {
    "pyflame top: keys",
    "",
    "  o  sort by own samples (the function was running)",
    "  t  sort by total samples (the function was on the stack)",
    "  n  sort by name",
    "  r  reverse the order",
    "  l  last interval / whole run",
    "  ]  next thread      [  previous thread      a  all threads",
    "  /  filter by name or file (Enter applies, Esc clears)",
    "  p  pause the refresh (sampling goes on; a key redraws)",
    "  ?  this help        q  quit",
    "",
    "Own: samples in which the function was the innermost frame. Total: samples",
    "in which it was anywhere on the stack (once per stack). Percentages are of",
    "the thread samples in the window (and thread) shown.",
};

// What the header says beyond the table: the shares of idle threads and of
// samples in which some thread held the GIL.
struct Shares {
  uint64_t threads_known = 0, threads_idle = 0;
  uint64_t samples = 0, samples_gil_known = 0, samples_gil_held = 0;
};

class TopConsumer : public SampleConsumer {
 public:
  TopConsumer(const TopOptions& options, std::string target, TopScreen* screen)
      : options_(options), target_(std::move(target)), screen_(screen),
        next_refresh_(options.refresh_seconds) {}

  void attached(const std::string& python_version, double) override { python_version_ = python_version; }

  void snapshot_read(const Snapshot& snapshot) override {
    ++shares_.samples;
    threads_ = snapshot.threads.size();
    bool gil_known = false, gil_held = false;
    for (const ThreadSample& t : snapshot.threads) {
      if (t.idle) {
        ++shares_.threads_known;
        if (*t.idle) ++shares_.threads_idle;
      }
      if (t.holds_gil) {
        gil_known = true;
        gil_held = gil_held || *t.holds_gil;
      }
    }
    if (gil_known) ++shares_.samples_gil_known;
    if (gil_held) ++shares_.samples_gil_held;
  }

  // --subprocesses: the table sums every process; the header counts them.
  void process_added(uint32_t, const ProfileProcess&) override { ++processes_; }

  void thread_sample(const ThreadSample& thread, double, uint32_t) override { table_.add(thread); }

  bool after_tick(const Counters& counters, double elapsed, bool) override {
    counters_ = counters;
    elapsed_ = elapsed;
    bool redraw = false;
    if (elapsed >= next_refresh_) {
      table_.end_interval();
      intervals_++;
      while (next_refresh_ <= elapsed) next_refresh_ += options_.refresh_seconds;
      if (!screen_) {
        print_plain();
        if (options_.once) return false;
      }
      redraw = true;
    }
    if (screen_) {
      // Paused, the view stays as it was until a key changes it.
      bool pressed = false;
      for (int key = screen_->poll_key(); key != TopScreen::KeyNone; key = screen_->poll_key()) {
        if (!on_key(key)) return false;
        pressed = true;
      }
      if (pressed || (redraw && !paused_)) draw();
    }
    return true;
  }

  // The target ended: the view says so and waits for q (or a stop signal).
  void wait_after_end(const std::string& why) {
    ended_ = why;
    if (!screen_) return;
    draw();
    while (requested_stop_signal() == 0) {
      int key = screen_->wait_key(250);
      if (key == TopScreen::KeyNone) continue;
      if (!on_key(key)) return;
      draw();
    }
  }

  void print_final(const std::string& why) {
    ended_ = why;
    if (!screen_ && !options_.once) {
      view_.whole_run = true;  // the last word is the whole run's
      print_plain();
    }
  }

 private:
  // False: quit.
  bool on_key(int key) {
    if (searching_) {
      if (key == '\n' || key == '\r' || key == 27) {
        if (key == 27) search_.clear();
        view_.filter = search_;
        searching_ = false;
      } else if (key == TopScreen::KeyBackspace || key == 127 || key == 8) {
        if (!search_.empty()) search_.pop_back();
      } else if (key >= 0x20 && key < 0x7f) {
        search_ += static_cast<char>(key);
      }
      return true;
    }
    switch (key) {
      case 'q': case 'Q': return false;
      case 'o': view_.sort = TopSort::kOwn; break;
      case 't': view_.sort = TopSort::kTotal; break;
      case 'n': view_.sort = TopSort::kName; break;
      case 'r': view_.reverse = !view_.reverse; break;
      case 'l': view_.whole_run = !view_.whole_run; break;
      case 'a': view_.thread.reset(); break;
      case ']': case '[': {
        const size_t n = table_.threads().size();
        if (n == 0) break;
        if (!view_.thread) view_.thread = key == ']' ? 0 : n - 1;
        else if (key == ']') view_.thread = *view_.thread + 1 < n ? std::optional<size_t>(*view_.thread + 1) : std::nullopt;
        else view_.thread = *view_.thread > 0 ? std::optional<size_t>(*view_.thread - 1) : std::nullopt;
        break;
      }
      case '/': searching_ = true; search_.clear(); break;
      case 27: view_.filter.clear(); break;
      case 'p': case ' ': paused_ = !paused_; break;
      case '?': case 'h': help_ = !help_; break;
      default: break;  // a resize, or a key with no meaning: redrawn
    }
    return true;
  }

  std::vector<std::string> header() const {
    const double rate = elapsed_ > 0 ? static_cast<double>(counters_.ticks) / elapsed_ : 0.0;
    std::string idle = shares_.threads_known
                           ? fmt::format("{:.0f}%", 100.0 * shares_.threads_idle / shares_.threads_known)
                           : std::string("n/a");
    std::string gil = shares_.samples_gil_known
                          ? fmt::format("{:.0f}%", 100.0 * shares_.samples_gil_held / shares_.samples_gil_known)
                          : std::string("n/a");
    std::vector<std::string> lines;
    lines.push_back(fmt::format("pyflame top - {}, Python {}, mode {}{}", target_, python_version_, sample_mode_name(options_.run.mode),
                                options_.run.native_all ? ", --native-all"
                                : options_.run.native   ? ", --native"
                                : options_.run.blocking ? ", --blocking"
                                                        : ""));
    lines.push_back(fmt::format("{:.1f} samples/s (asked {:g}), {} samples, {} errors, {} torn", rate,
                                1.0 / options_.run.interval_seconds, counters_.ticks, counters_.errors,
                                counters_.torn));
    if (options_.run.subprocesses)
      lines.push_back(fmt::format("{} Python processes of the tree (--subprocesses)", processes_));
    else
      lines.push_back(fmt::format("{} threads, idle {}, GIL held {}", threads_, idle, gil));
    std::string thread = "all threads";
    if (view_.thread && *view_.thread < table_.threads().size()) {
      const TopThread& t = table_.threads()[*view_.thread];
      thread = fmt::format("thread '{}' (tid {})", t.name,
                           t.native_id ? std::to_string(*t.native_id) : std::string("?"));
    }
    const char* sort = view_.sort == TopSort::kOwn ? "own" : view_.sort == TopSort::kTotal ? "total" : "name";
    lines.push_back(fmt::format("{}, {}, sorted by {}{}{}{}",
                                view_.whole_run ? fmt::format("whole run ({:.0f} s)", elapsed_)
                                                : fmt::format("last {:g} s", options_.refresh_seconds),
                                thread, sort, view_.reverse ? " (reversed)" : "",
                                view_.filter.empty() ? "" : fmt::format(", filter '{}'", view_.filter),
                                paused_ ? ", PAUSED" : ""));
    if (!ended_.empty()) lines.push_back(ended_);
    lines.push_back("");
    return lines;
  }

  void draw() {
    std::vector<std::string> body;
    if (help_) {
      body.assign(std::begin(kHelp), std::end(kHelp));
    } else {
      body = format_top_rows(table_.rows(view_), table_.samples(view_), screen_->width(), 0);
    }
    std::string footer = searching_ ? "filter: " + search_ + "_"
                         : !ended_.empty() ? "q quit  ? help"
                                           : "q quit  ? help  o/t/n sort  l last/whole  [ ] thread  / filter  p pause";
    screen_->draw(header(), body, footer);
  }

  void print_plain() {
    std::string out;
    for (const std::string& line : header())
      if (!line.empty()) out += terminal_text(line, SIZE_MAX) + "\n";
    for (const std::string& line :
         format_top_rows(table_.rows(view_), table_.samples(view_), SIZE_MAX, options_.rows))
      out += line + "\n";
    out += "\n";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }

  const TopOptions& options_;
  std::string target_;
  TopScreen* screen_;
  std::string python_version_;
  TopTable table_;
  TopView view_;
  Shares shares_;
  Counters counters_;
  double elapsed_ = 0;
  double next_refresh_;
  uint64_t intervals_ = 0;
  size_t threads_ = 0;  // in the last sample read
  size_t processes_ = 0;  // --subprocesses: profiled so far
  bool paused_ = false, help_ = false, searching_ = false;
  std::string search_;
  std::string ended_;
};

}  // namespace

int top(const PythonModule& module, const TopOptions& options) {
  StopSignals stop_signals;
  std::unique_ptr<OutputFile> stats_file;
  if (options.stats_json) stats_file = std::make_unique<OutputFile>(*options.stats_json);
  if (!options.run.command.empty()) privilege::drop();

  std::unique_ptr<TopScreen> screen;
  if (!options.plain && ::isatty(STDOUT_FILENO) && ::isatty(STDIN_FILENO)) {
    screen = TopScreen::open();
    if (!screen)
      std::fprintf(stderr, "pyflame: cannot drive this terminal (TERM=%s); printing plain text\n",
                   std::getenv("TERM") ? std::getenv("TERM") : "");
  }
  SamplingRun sampling(module, options.run);
  LaunchedCommand* command = sampling.command();
  const int pid = sampling.pid();
  const std::string target = command ? fmt::format("{} (pid {})", join_command(options.run.command), pid)
                                     : fmt::format("process {}", pid);
  TopConsumer consumer(options, target, screen.get());
  if (std::optional<int> code = sampling.run(consumer)) return *code;
  const RunOutcome& outcome = sampling.outcome();
  if (options.run.blocking) ThreadStopper::release_stragglers(std::chrono::seconds(1));
  privilege::drop();

  const int stop_signal = requested_stop_signal();
  std::string ended;
  if (outcome.fatal) ended = outcome.fatal->what();
  else if (command && command->poll()) ended = fmt::format("the command (pid {}) exited", pid);
  else if (outcome.target_exited) ended = fmt::format("process {} exited", pid);
  else if (outcome.target_execed) ended = fmt::format("process {} executed another program", pid);
  else if (command && !outcome.attached) ended = "the command never started a Python interpreter pyflame could read";
  if (!ended.empty() && stop_signal == 0) {
    consumer.wait_after_end("pyflame: " + ended + (screen ? "; press q to quit" : ""));
  }
  if (!screen) consumer.print_final(ended);
  screen.reset();  // the terminal as it was, before anything else is said

  if (stats_file) {
    Profile profile;  // top keeps no stacks: the stack figures are 0
    profile.pid = pid;
    stats_file->commit(stats_to_json(outcome.counters, outcome.elapsed, outcome.attach_seconds, outcome.cost,
                                     profile, outcome.reads));
  }
  if (!ended.empty()) std::fprintf(stderr, "pyflame: %s\n", ended.c_str());
  if (outcome.fatal) {
    if (command) finish_command(*command, stop_signal);
    return static_cast<int>(outcome.fatal->code());
  }
  if (command) {
    // q (or --once, -d) ends the command top launched too: top is a view.
    const bool quit = stop_signal == 0 && !command->poll();
    finish_command(*command, stop_signal != 0 ? stop_signal : quit ? SIGTERM : 0);
    if (stop_signal != 0) return 128 + stop_signal;
    if (quit) return 0;  // its end was ours
    if (!outcome.attached) return static_cast<int>(ExitCode::kNotPython);
    return command->exit_code();
  }
  if (stop_signal != 0) return 128 + stop_signal;
  if (outcome.target_exited || outcome.target_execed) return static_cast<int>(ExitCode::kTargetExited);
  return 0;
}

}  // namespace pyflame::core

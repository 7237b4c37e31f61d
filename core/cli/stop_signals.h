// SPDX-License-Identifier: Apache-2.0
// The signals that end a recording (the profile so far is still written),
// and which of them came.
#pragma once

#include <signal.h>

#include <array>

namespace pyflame::core {

// Every signal whose default would kill us without a word ends a recording
// the same way: the profile so far is written (no temporary file is left
// behind), then we exit 128 + N. Only SIGKILL cannot be caught.
inline constexpr std::array<int, 6> kStopSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// Installs the stop handlers for its lifetime. No SA_RESTART: a signal must
// cut the sleep between samples short.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  std::array<struct sigaction, kStopSignals.size()> old_{};
};

// The signal that asked us to stop since the last StopSignals was
// installed; 0 while none has.
int requested_stop_signal();

}  // namespace pyflame::core

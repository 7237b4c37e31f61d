// SPDX-License-Identifier: Apache-2.0
// The one way every pyflame program ends on an error.
#pragma once

#include <cstdio>
#include <exception>

#include "core/errors.h"

namespace pyflame::core {

// Runs a program's body and turns what it throws into the one line on
// standard error and the exit code every pyflame program gives: an
// Error's own; anything else is an internal error (exit 1).
template <typename Body>
int exit_code_of(Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pyflame: internal error: %s\n", e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
}

}  // namespace pyflame::core

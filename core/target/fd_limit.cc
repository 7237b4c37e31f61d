// SPDX-License-Identifier: Apache-2.0
#include "core/target/fd_limit.h"

#include <sys/resource.h>

namespace pyflame::core {
namespace {

rlimit g_original{};
bool g_raised = false;

}  // namespace

void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  g_original = limit;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) g_raised = true;
}

void restore_open_file_limit() {
  if (g_raised) ::setrlimit(RLIMIT_NOFILE, &g_original);
}

}  // namespace pyflame::core

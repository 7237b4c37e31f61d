// SPDX-License-Identifier: Apache-2.0
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/fuzz_input.h"

namespace pyflame::fuzz {

void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz check failed: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

}  // namespace pyflame::fuzz

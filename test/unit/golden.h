// SPDX-License-Identifier: Apache-2.0
// Golden files: a writer's output compared byte for byte with a file in
// test/golden/. Run the unit tests with PYFLAME_UPDATE_GOLDEN=1 to rewrite
// them after a deliberate change (and review the diff).
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace pyflame::test {

inline void check_golden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(PYFLAME_GOLDEN_DIR) + "/" + name;
  if (std::getenv("PYFLAME_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  INFO("golden file " << path << " (PYFLAME_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(in.good());
  std::stringstream expected;
  expected << in.rdbuf();
  CHECK(expected.str() == actual);
}

}  // namespace pyflame::test

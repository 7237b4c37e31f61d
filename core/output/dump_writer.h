// SPDX-License-Identifier: Apache-2.0
// Writes one snapshot for `dump`: readable text, or the JSON documented in
// docs/usage.md.
#pragma once

#include <string>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

std::string snapshot_to_text(const Snapshot& snapshot);
std::string snapshot_to_json(const Snapshot& snapshot);

}  // namespace pyflame::core

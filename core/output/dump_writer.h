// SPDX-License-Identifier: Apache-2.0
// Writes one snapshot for `dump`: readable text, or the JSON documented in
// docs/usage.md.
#pragma once

#include <string>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

// `locals`: dump --locals, each Python frame's variables (Frame::locals)
// under it; in JSON a "locals" list, null where they could not be read.
std::string snapshot_to_text(const Snapshot& snapshot, bool locals = false);
std::string snapshot_to_json(const Snapshot& snapshot, bool locals = false);

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
// The profile writers, one file each (writer_*.cc). Each is a pure function
// of the profile, so golden tests compare their output byte for byte.
// Formats are documented in docs/formats.md.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/output/profile.h"

namespace pyflame::core {

enum class OutputFormat { kCollapsed, kFlamegraph, kSpeedscope, kPprof, kFlamechart };

// "collapsed", "flamegraph" (or "svg"), "speedscope", "pprof", "flamechart".
std::optional<OutputFormat> parse_format(std::string_view name);
// From an output path's extension: .svg, .json/.speedscope, .pb.gz/.pprof,
// .txt/.folded/.collapsed; nullopt when the extension says nothing.
std::optional<OutputFormat> format_for_path(std::string_view path);
std::string_view format_name(OutputFormat format);

std::string write_profile(OutputFormat format, const Profile& profile);

// `frame;frame;frame count` lines, root first (flamegraph.pl, inferno).
std::string write_collapsed(const Profile& profile);
// Pyflame's --flamechart: each sample in time order, `seconds stack` lines.
std::string write_flamechart(const Profile& profile);
// One self-contained interactive SVG.
std::string write_flamegraph_svg(const Profile& profile);
// The speedscope file format (https://www.speedscope.app/file-format-schema.json).
std::string write_speedscope(const Profile& profile);
// gzipped profile.proto (github.com/google/pprof/proto/profile.proto).
std::string write_pprof(const Profile& profile);

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
// The interactive SVG flame graph: stacks merged by identical prefix, root
// at the bottom, each frame as wide as its share of the samples. The file is
// self-contained (inline style and script, no fonts, no fetches) so it can be
// attached to a bug report and opened anywhere. Same profile, same bytes: the
// golden tests compare it exactly.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/output/utf8.h"
#include "core/output/writers.h"
// Generated from flamegraph.css and flamegraph.js (cmake/PyflameEmbed.cmake),
// byte for byte. The script gets the geometry from the <svg> element's data-*
// attributes and each frame's place in samples from its own (data-s start,
// data-n count, data-d depth), so zooming is arithmetic: a frame is drawn
// when it is an ancestor of the zoomed one (full width) or inside it
// (scaled), hidden otherwise.
#include "embedded/flamegraph_css.h"
#include "embedded/flamegraph_js.h"

namespace pyflame::core {
namespace {

// Geometry, in SVG user units (pixels at 100%). The script reads the ones it
// needs from the <svg> element's data-* attributes, so they live only here.
constexpr double kImageWidth = 1200;
constexpr double kMargin = 10;  // left and right of the frames
constexpr double kFramesWidth = kImageWidth - 2 * kMargin;
constexpr double kFrameHeight = 16;  // one row; the rect is a pixel less
constexpr double kHeaderHeight = 60;  // title, subtitle, controls
constexpr double kFooterHeight = 30;  // the details line
// Labels use the monospace font at 12px, whose advance is 0.6em (7.2px);
// rounded up so that a label judged to fit does fit.
constexpr double kCharWidth = 7.3;
constexpr double kTextPadding = 3;  // between a frame's edge and its label
// A frame narrower than 1/kMinFraction of the total is not drawn (nor its
// children, narrower still); its samples still count in its ancestors.
constexpr uint64_t kMinFraction = 1000;

enum class NodeKind { kRoot, kThread, kPython, kNative, kUnknown };

struct Node {
  std::string label;     // what the frame shows: frame_label() or thread_label()
  std::string function;  // what search matches and the colour is derived from
  NodeKind kind = NodeKind::kPython;
  uint64_t count = 0;
  // By label: the merge key, and sorted, so the drawing is deterministic.
  std::map<std::string, uint32_t> children;
};

// Valid UTF-8 that XML accepts: not U+FFFE or U+FFFF either.
size_t xml_sequence_length(std::string_view s, size_t i) {
  uint32_t cp = 0;
  size_t n = utf8_sequence_length(s, i, &cp);
  return cp == 0xfffe || cp == 0xffff ? 0 : n;
}

// Valid UTF-8 with no control characters: a file name from a 2.7 target can
// be any bytes, and XML allows neither broken sequences nor most controls.
// Each offending byte becomes U+FFFD, so a label never contains a newline
// (the script splits titles at the last one).
std::string clean_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = xml_sequence_length(s, i);
    uint8_t b = static_cast<uint8_t>(s[i]);
    if (n == 0 || (n == 1 && (b < 0x20 || b == 0x7f))) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Escapes text already cleaned for use in both content and attributes.
void append_xml(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
}

// The label as it fits in `width`: whole, cut to "prefix..", or empty. Counts
// code points, as fit() in flamegraph.js does, so both agree.
std::string fit_text(const std::string& label, double width) {
  const double room = width - 2 * kTextPadding;
  const size_t fits = room > 0 ? static_cast<size_t>(room / kCharWidth) : 0;
  if (fits < 3) return "";
  auto is_lead = [](char c) { return (static_cast<uint8_t>(c) & 0xc0) != 0x80; };
  size_t code_points = 0;
  for (char c : label) code_points += is_lead(c);
  if (code_points <= fits) return label;
  size_t keep = fits - 2, seen = 0, end = 0;
  for (; end < label.size(); ++end) {
    if (is_lead(label[end]) && seen++ == keep) break;
  }
  return label.substr(0, end) + "..";
}

std::string samples_text(uint64_t n) { return fmt::format("{} sample{}", n, n == 1 ? "" : "s"); }

// FNV-1a: stable across runs and platforms, unlike std::hash.
uint32_t stable_hash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

// Warm colours for Python code, the same function always the same colour;
// greens for C frames; grey for frames that could not be read; blues for
// threads.
std::string frame_colour(const Node& node) {
  uint32_t h = stable_hash(node.function);
  uint32_t v1 = h & 0xff, v2 = (h >> 8) & 0xff, v3 = (h >> 16) & 0xff;
  switch (node.kind) {
    case NodeKind::kUnknown: {
      uint32_t grey = 170 + v1 * 40 / 255;
      return fmt::format("rgb({},{},{})", grey, grey, grey);
    }
    case NodeKind::kNative:  // greens: C and C++ (--native)
      return fmt::format("rgb({},{},{})", 70 + v1 * 60 / 255, 170 + v2 * 60 / 255, 70 + v3 * 50 / 255);
    case NodeKind::kThread:
      return fmt::format("rgb({},{},{})", 60 + v1 * 60 / 255, 150 + v2 * 60 / 255,
                         215 + v3 * 40 / 255);
    case NodeKind::kRoot:
    case NodeKind::kPython:
      break;
  }
  return fmt::format("rgb({},{},{})", 205 + v1 * 50 / 255, v2 * 230 / 255, v3 * 55 / 255);
}

std::vector<Node> build_tree(const Profile& profile) {
  std::vector<std::string> labels;
  labels.reserve(profile.frames.size());
  for (const ProfileFrame& frame : profile.frames) labels.push_back(clean_text(frame_label(frame)));
  // Per thread: its process (--subprocesses) and itself (--threads).
  std::vector<std::vector<std::string>> thread_roots;
  if (profile.thread_roots || profile.process_roots) {
    thread_roots.reserve(profile.threads.size());
    for (const ProfileThread& thread : profile.threads) {
      std::vector<std::string> roots = root_labels(profile, thread);
      for (std::string& root : roots) root = clean_text(root);
      thread_roots.push_back(std::move(roots));
    }
  }

  std::vector<Node> nodes(1);
  nodes[0].label = nodes[0].function = "all";
  nodes[0].kind = NodeKind::kRoot;
  for (const ProfileStack& stack : profile.stacks) {
    if (stack.count == 0) continue;
    uint32_t at = 0;
    nodes[0].count += stack.count;
    auto descend = [&](const std::string& label, std::string_view function, NodeKind kind) {
      auto [it, added] =
          nodes[at].children.try_emplace(label, static_cast<uint32_t>(nodes.size()));
      uint32_t child = it->second;
      if (added) nodes.push_back(Node{label, clean_text(function), kind, 0, {}});
      at = child;
      nodes[at].count += stack.count;
    };
    if (!thread_roots.empty())
      for (const std::string& label : thread_roots[stack.thread]) descend(label, label, NodeKind::kThread);
    for (uint32_t f : stack.frames) {
      const ProfileFrame& frame = profile.frames[f];
      descend(labels[f], frame.function,
              frame.native() ? NodeKind::kNative
              : frame.function == "<unknown>" ? NodeKind::kUnknown : NodeKind::kPython);
    }
  }
  return nodes;
}

struct Placed {
  uint32_t node;
  uint64_t start;  // samples to the left of the frame within the whole graph
  uint32_t depth;
};

// Pre-order, children in label order, left to right; iterative, since stacks
// can be thousands of frames deep. Skips frames too narrow to draw.
std::vector<Placed> place_frames(const std::vector<Node>& nodes) {
  std::vector<Placed> placed;
  const uint64_t total = nodes[0].count;
  std::vector<Placed> todo{{0, 0, 0}};
  std::vector<Placed> children;
  while (!todo.empty()) {
    Placed p = todo.back();
    todo.pop_back();
    placed.push_back(p);
    children.clear();
    uint64_t start = p.start;
    for (const auto& [label, child] : nodes[p.node].children) {
      // Later siblings keep their place even when this one is not drawn.
      if (nodes[child].count * kMinFraction >= total)
        children.push_back({child, start, p.depth + 1});
      start += nodes[child].count;
    }
    todo.insert(todo.end(), children.rbegin(), children.rend());
  }
  return placed;
}

void append_frame(std::string& out, const Node& node, const Placed& p, uint64_t total,
                  uint32_t id, double y) {
  const auto share = [&](uint64_t n) {
    return static_cast<double>(n) / static_cast<double>(total);
  };
  const double x = kMargin + share(p.start) * kFramesWidth;
  const double width = share(node.count) * kFramesWidth;
  out += fmt::format(R"(<g class="frame" id="f{}" data-s="{}" data-n="{}" data-d="{}" data-f=")",
                     id, p.start, node.count, p.depth);
  append_xml(out, node.function);
  out += R"("><title>)";
  append_xml(out, node.label);
  out += fmt::format("&#10;{}, {:.2f}%</title>", samples_text(node.count), 100 * share(node.count));
  out += fmt::format(R"(<rect x="{:.2f}" y="{:.1f}" width="{:.2f}" height="{:.1f}" rx="2" )"
                     R"(fill="{}"/>)",
                     x, y, width, kFrameHeight - 1, frame_colour(node));
  out += fmt::format(R"(<text x="{:.2f}" y="{:.1f}">)", x + kTextPadding, y + kFrameHeight - 4.5);
  append_xml(out, fit_text(node.label, width));
  out += "</text></g>\n";
}

// Title, what was profiled, the controls and the (empty) status lines.
void append_header(std::string& out, const Profile& profile, uint64_t total, double height) {
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  out += fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{0}" height="{1}" )"
      R"(viewBox="0 0 {0} {1}" data-samples="{2}" data-x="{3}" data-width="{4}" )"
      R"(data-char-width="{5}" data-text-padding="{6}">)"
      "\n",
      kImageWidth, height, total, kMargin, kFramesWidth, kCharWidth, kTextPadding);
  out += "<style>\n";
  out += embedded::kFlamegraphStyle;
  out += "</style>\n";
  out += fmt::format(R"(<rect class="background" x="0" y="0" width="{}" height="{}"/>)"
                     "\n",
                     kImageWidth, height);
  out += fmt::format(R"(<text class="title" x="{}" y="24">Flame graph</text>)"
                     "\n",
                     kImageWidth / 2);

  std::string subtitle = clean_text(profile.target);
  if (!profile.python_version.empty())
    subtitle += " | Python " + clean_text(profile.python_version);
  subtitle += fmt::format(" | {} | {:.2f} s", samples_text(total), profile.duration_seconds);
  out += fmt::format(R"(<text id="subtitle" class="subtitle" x="{}" y="44">)", kImageWidth / 2);
  append_xml(out, fit_text(subtitle, kFramesWidth));
  out += "</text>\n";

  out += fmt::format(R"(<text id="reset" class="control hidden" x="{}" y="24">Reset zoom</text>)"
                     "\n",
                     kMargin);
  out += fmt::format(
      R"(<text id="search" class="control" x="{}" y="24" text-anchor="end">Search</text>)"
      "\n",
      kImageWidth - kMargin);
  const double footer_y = height - 12;
  out += fmt::format(R"(<text id="details" x="{}" y="{}"> </text>)"
                     "\n",
                     kMargin, footer_y);
  out += fmt::format(R"(<text id="matched" x="{}" y="{}" text-anchor="end"></text>)"
                     "\n",
                     kImageWidth - kMargin, footer_y);
}

}  // namespace

std::string write_flamegraph_svg(const Profile& profile) {
  const std::vector<Node> nodes = build_tree(profile);
  const uint64_t total = nodes[0].count;
  std::vector<Placed> placed;
  if (total > 0) placed = place_frames(nodes);
  uint32_t max_depth = 0;
  for (const Placed& p : placed) max_depth = std::max(max_depth, p.depth);
  // An empty profile keeps two rows' room for its "no samples".
  const double rows = total > 0 ? max_depth + 1.0 : 2.0;
  const double height = kHeaderHeight + rows * kFrameHeight + kFooterHeight;

  std::string out;
  append_header(out, profile, total, height);
  out += "<g id=\"frames\">\n";
  if (total == 0) {
    out += fmt::format(
        R"(<text id="empty" x="{}" y="{}" text-anchor="middle">no samples</text>)"
        "\n",
        kImageWidth / 2, kHeaderHeight + kFrameHeight);
  }
  for (uint32_t id = 0; id < placed.size(); ++id) {
    const Placed& p = placed[id];
    append_frame(out, nodes[p.node], p, total, id,
                 kHeaderHeight + (max_depth - p.depth) * kFrameHeight);
  }
  out += "</g>\n";
  // Last, so that the frames exist when it runs.
  out += "<script><![CDATA[\n";
  out += embedded::kFlamegraphScript;
  out += "]]></script>\n</svg>\n";
  return out;
}

}  // namespace pyflame::core

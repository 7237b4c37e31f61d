// SPDX-License-Identifier: Apache-2.0
// Golden and structural tests of the SVG flame graph writer. Its behaviour in
// a browser (zoom, search, hover) is tested by test/browser/flamegraph_test.mjs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "core/output/writers.h"
#include "golden.h"
#include "profile_fixture.h"

using namespace pyflame;

namespace {

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<uint8_t>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Whether `s` at `i` starts a reference XML knows without a DTD.
bool entity_at(const std::string& s, size_t i) {
  static const std::regex entity(R"(^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)");
  return std::regex_search(s.substr(i, 16), entity);
}

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':' || c == '-' || c == '.';
}

// A well-formedness check strict enough for what the writer produces: one
// root element, tags closed in order, attributes quoted and not repeated,
// '<' only as markup, '&' only as a reference, CDATA and comments closed,
// valid UTF-8 and no control characters. Returns "" or the first problem.
std::string xml_problem(const std::string& doc) {
  if (!valid_utf8(doc)) return "invalid UTF-8";
  for (char c : doc)
    if (static_cast<uint8_t>(c) < 0x20 && c != '\n' && c != '\r' && c != '\t') return "control character";
  std::vector<std::string> open;
  int roots = 0;
  size_t i = 0;
  if (doc.rfind("<?xml", 0) == 0) i = doc.find("?>") + 2;
  auto check_text = [&](size_t from, size_t to) -> std::string {
    for (size_t k = from; k < to; ++k) {
      if (doc[k] == '&' && !entity_at(doc, k)) return "bare & at " + std::to_string(k);
      if (open.empty() && !std::isspace(static_cast<unsigned char>(doc[k]))) return "text outside the root";
    }
    return "";
  };
  while (i < doc.size()) {
    size_t lt = doc.find('<', i);
    if (lt == std::string::npos) lt = doc.size();
    if (auto p = check_text(i, lt); !p.empty()) return p;
    if (lt == doc.size()) break;
    i = lt;
    if (doc.compare(i, 9, "<![CDATA[") == 0) {
      size_t end = doc.find("]]>", i);
      if (end == std::string::npos || open.empty()) return "bad CDATA";
      i = end + 3;
      continue;
    }
    if (doc.compare(i, 4, "<!--") == 0) {
      size_t end = doc.find("-->", i);
      if (end == std::string::npos) return "unclosed comment";
      i = end + 3;
      continue;
    }
    bool closing = doc.compare(i, 2, "</") == 0;
    i += closing ? 2 : 1;
    size_t name_start = i;
    while (i < doc.size() && name_char(doc[i])) ++i;
    std::string name = doc.substr(name_start, i - name_start);
    if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_'))
      return "bad tag name at " + std::to_string(name_start);
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open tag";
      open.pop_back();
      if (i >= doc.size() || doc[i] != '>') return "bad end tag " + name;
      ++i;
      continue;
    }
    std::map<std::string, bool> attributes;
    for (;;) {
      while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
      if (i >= doc.size()) return "unterminated tag " + name;
      if (doc.compare(i, 2, "/>") == 0 || doc[i] == '>') {
        bool empty = doc[i] == '/';
        i += empty ? 2 : 1;
        if (open.empty() && ++roots > 1) return "second root element";
        if (!empty) open.push_back(name);
        break;
      }
      size_t attr_start = i;
      while (i < doc.size() && name_char(doc[i])) ++i;
      std::string attr = doc.substr(attr_start, i - attr_start);
      if (attr.empty() || i + 1 >= doc.size() || doc[i] != '=' || (doc[i + 1] != '"' && doc[i + 1] != '\''))
        return "bad attribute in " + name + " at " + std::to_string(attr_start);
      if (!attributes.emplace(attr, true).second) return "repeated attribute " + attr;
      char quote = doc[i + 1];
      size_t value_end = doc.find(quote, i + 2);
      if (value_end == std::string::npos) return "unterminated attribute " + attr;
      for (size_t k = i + 2; k < value_end; ++k) {
        if (doc[k] == '<') return "< in attribute " + attr;
        if (doc[k] == '&' && !entity_at(doc, k)) return "bare & in attribute " + attr;
      }
      i = value_end + 1;
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (roots != 1) return "no root element";
  return "";
}

struct DrawnFrame {
  std::string function;  // data-f, still escaped
  uint64_t start = 0;
  uint64_t count = 0;
  int depth = 0;
};

std::vector<DrawnFrame> drawn_frames(const std::string& svg) {
  static const std::regex frame(
      R"re(<g class="frame" id="f\d+" data-s="(\d+)" data-n="(\d+)" data-d="(\d+)" data-f="([^"]*)">)re");
  std::vector<DrawnFrame> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), frame); it != std::sregex_iterator(); ++it)
    out.push_back({(*it)[4], std::stoull((*it)[1]), std::stoull((*it)[2]), std::stoi((*it)[3])});
  return out;
}

uint64_t drawn_count(const std::vector<DrawnFrame>& frames, const std::string& function) {
  uint64_t n = 0;
  for (const DrawnFrame& f : frames) n += f.function == function ? f.count : 0;
  return n;
}

core::ThreadSample thread_with(std::vector<core::Frame> innermost_first) {
  core::ThreadSample t;
  t.thread_id = 1;
  t.native_id = 7;
  t.name = "main";
  t.frames = std::move(innermost_first);
  return t;
}

core::Profile empty_profile() {
  core::Profile empty;
  empty.pid = 1;
  empty.target = "process 1";
  empty.python_version = "3.12.1";
  empty.duration_seconds = 0.25;
  return empty;
}

}  // namespace

TEST_CASE("flamegraph writer matches its golden files") {
  test::check_golden("flamegraph.svg", core::write_flamegraph_svg(test::fixture_profile()));
  test::check_golden("flamegraph_threads.svg", core::write_flamegraph_svg(test::fixture_profile(true)));
}

TEST_CASE("flamegraph SVG is well-formed XML with every name escaped") {
  for (bool threads : {false, true}) {
    std::string svg = core::write_flamegraph_svg(test::fixture_profile(threads));
    INFO("thread roots: " << threads);
    CHECK(xml_problem(svg) == "");
    CHECK(svg.find("<tags>") == std::string::npos);
    CHECK(svg.find("<module>") == std::string::npos);
    CHECK(svg.find("<unknown>") == std::string::npos);
    CHECK(svg.find(R"(data-f="fn;with&quot;quotes&quot;&amp;&lt;tags&gt;")") != std::string::npos);
    CHECK(svg.find("fn;with&quot;quotes&quot;&amp;&lt;tags&gt; (/srv/dir ñ/関.py:3)&#10;5 samples, 5.00%") !=
          std::string::npos);
    CHECK(svg.find("python3 app.py --name &quot;x&quot; | Python 3.11.7 | 100 samples | 1.50 s") !=
          std::string::npos);
    // Self-contained: nothing is fetched.
    CHECK(svg.find("href") == std::string::npos);
    CHECK(svg.find("@import") == std::string::npos);
    CHECK(svg.find("url(") == std::string::npos);
  }
}

TEST_CASE("the checker used above rejects broken XML") {
  CHECK(xml_problem(R"(<svg><g></svg>)") != "");
  CHECK(xml_problem(R"(<svg><title>a <b> c</title></svg>)") != "");
  CHECK(xml_problem(R"(<svg><title>a & b</title></svg>)") != "");
  CHECK(xml_problem(R"(<svg a="x" a="y"/>)") != "");
  CHECK(xml_problem(R"(<svg a="x<y"/>)") != "");
  CHECK(xml_problem("<svg>\xff</svg>") != "");
  CHECK(xml_problem(R"(<svg><title>a &amp; b</title><script><![CDATA[1 < 2 && 3]]></script></svg>)") == "");
}

TEST_CASE("flamegraph frames merge stacks by prefix and keep every count") {
  auto frames = drawn_frames(core::write_flamegraph_svg(test::fixture_profile()));
  REQUIRE(!frames.empty());
  CHECK(frames[0].function == "all");
  CHECK(frames[0].count == 100);
  CHECK(frames[0].depth == 0);
  // Without thread roots the two threads' stacks share nothing but the root.
  CHECK(drawn_count(frames, "hot") == 60);
  CHECK(std::count_if(frames.begin(), frames.end(), [](auto& f) { return f.function == "hot"; }) == 2);
  CHECK(drawn_count(frames, "App.run") == 82);
  CHECK(drawn_count(frames, "&lt;module&gt;") == 87);
  CHECK(drawn_count(frames, "loop") == 13);
  CHECK(drawn_count(frames, "&lt;unknown&gt;") == 2);
  // Children lie inside their parent, siblings side by side.
  for (const DrawnFrame& f : frames) {
    CHECK(f.start + f.count <= 100);
  }

  auto threaded = drawn_frames(core::write_flamegraph_svg(test::fixture_profile(true)));
  CHECK(drawn_count(threaded, "thread &apos;python3&apos; (tid 100)") == 87);
  CHECK(drawn_count(threaded, "thread &apos;worker &lt;1&gt;&apos; (tid 101)") == 13);
  CHECK(drawn_count(threaded, "hot") == 60);
}

TEST_CASE("flamegraph of an empty profile says so") {
  std::string svg = core::write_flamegraph_svg(empty_profile());
  test::check_golden("flamegraph_empty.svg", svg);
  CHECK(xml_problem(svg) == "");
  CHECK(svg.find(">no samples</text>") != std::string::npos);
  CHECK(svg.find("0 samples") != std::string::npos);
  CHECK(drawn_frames(svg).empty());
}

TEST_CASE("flamegraph drops frames too narrow to see but keeps their samples") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  core::Frame a{"a", std::nullopt, "/a.py", 1};
  // Sorted by label, "dropped" comes before "small": the gap it leaves shows.
  core::Frame dropped{"dropped", std::nullopt, "/a.py", 2};
  core::Frame small{"small", std::nullopt, "/a.py", 3};
  core::Frame unsampled{"unsampled", std::nullopt, "/a.py", 4};
  builder.add(thread_with({a}), 2995);
  builder.add(thread_with({dropped, a}), 2);   // 2/3000 < 1/1000: not drawn
  builder.add(thread_with({unsampled, a}), 0);  // no samples: no frame
  builder.add(thread_with({small, a}), 3);      // 3/3000: drawn
  std::string svg = core::write_flamegraph_svg(p);
  CHECK(xml_problem(svg) == "");
  auto frames = drawn_frames(svg);
  CHECK(drawn_count(frames, "all") == 3000);
  CHECK(drawn_count(frames, "a") == 3000);
  CHECK(drawn_count(frames, "small") == 3);
  CHECK(drawn_count(frames, "dropped") == 0);
  CHECK(drawn_count(frames, "unsampled") == 0);
  for (const DrawnFrame& f : frames)
    if (f.function == "small") CHECK(f.start == 2);
}

TEST_CASE("flamegraph output does not depend on the order stacks arrived in") {
  core::Profile p = test::fixture_profile(true);
  core::Profile reversed = p;
  std::reverse(reversed.stacks.begin(), reversed.stacks.end());
  CHECK(core::write_flamegraph_svg(p) == core::write_flamegraph_svg(reversed));
}

TEST_CASE("flamegraph replaces bytes XML cannot carry") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  // A 2.7 file name can be any bytes: Latin-1, a control character, a
  // surrogate encoded in UTF-8, an overlong '<'.
  core::Frame bad{"f\x01g", std::nullopt, "/caf\xe9/\xed\xa0\x80/\xc0\xbc.py", 1};
  builder.add(thread_with({bad}), 1);
  std::string svg = core::write_flamegraph_svg(p);
  CHECK(xml_problem(svg) == "");
  CHECK(svg.find("f\xef\xbf\xbdg (/caf\xef\xbf\xbd/") != std::string::npos);
}

TEST_CASE("flamegraph of a deep stack draws every level") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  std::vector<core::Frame> frames;
  for (int i = 0; i < 3000; ++i) frames.push_back({"f", std::nullopt, "/deep.py", i + 1});
  builder.add(thread_with(frames), 1);
  std::string svg = core::write_flamegraph_svg(p);
  CHECK(xml_problem(svg) == "");
  auto drawn = drawn_frames(svg);
  REQUIRE(drawn.size() == 3001);
  CHECK(drawn.back().depth == 3000);
  // 60 above the frames, 16 a level, 30 below.
  CHECK(svg.find(R"(height="48106")") != std::string::npos);
}

TEST_CASE("flamegraph labels are cut to fit their frame") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  core::Frame root{"root", std::nullopt, "/r.py", 1};
  core::Frame wide{"a_long_function_name_that_needs_room", std::nullopt, "/w.py", 1};
  core::Frame narrow{"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", std::nullopt, "/n.py", 1};
  core::Frame sliver{"s", std::nullopt, "/s.py", 1};
  builder.add(thread_with({wide, root}), 900);
  builder.add(thread_with({narrow, root}), 95);  // 112.1 px: 14 characters
  builder.add(thread_with({sliver, root}), 5);   // 5.9 px: no room for text
  std::string svg = core::write_flamegraph_svg(p);
  CHECK(svg.find(">a_long_function_name_that_needs_room (/w.py:1)</text>") != std::string::npos);
  CHECK(svg.find(">nnnnnnnnnnnn..</text>") != std::string::npos);
  size_t at = svg.find(R"(data-f="s">)");
  REQUIRE(at != std::string::npos);
  std::string sliver_frame = svg.substr(at, svg.find("</g>", at) - at);
  CHECK(sliver_frame.find("&#10;5 samples, 0.50%</title>") != std::string::npos);
  CHECK(sliver_frame.ends_with("></text>"));
}

// SPDX-License-Identifier: Apache-2.0
// Golden and structural tests of the speedscope writer. The schema and the
// real viewer are checked in test/browser/speedscope_*.mjs.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/output/writers.h"
#include "golden.h"
#include "profile_fixture.h"

using namespace pyflame;

namespace {

// A small strict JSON reader, enough to walk the writer's output: a document
// that does not parse throws, so each test also checks the syntax.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  double number = 0;
  std::string string;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json& operator[](const std::string& key) const {
    auto it = fields.find(key);
    if (kind != kObject || it == fields.end()) throw std::runtime_error("no field " + key);
    return it->second;
  }
  const Json& operator[](size_t i) const {
    if (kind != kArray || i >= items.size()) throw std::runtime_error("no item");
    return items[i];
  }
  bool has(const std::string& key) const { return fields.count(key) != 0; }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}
  Json document() {
    Json v = value();
    skip_space();
    if (i_ != s_.size()) fail("trailing text");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string(what) + " at offset " + std::to_string(i_));
  }
  void skip_space() {
    constexpr std::string_view kSpace = " \n\t\r";
    while (i_ < s_.size() && kSpace.find(s_[i_]) != std::string_view::npos) ++i_;
  }
  void expect(char c) {
    skip_space();
    if (i_ >= s_.size() || s_[i_] != c) fail("unexpected character");
    ++i_;
  }
  bool accept(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(const char* word) {
    std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          unsigned cp = std::stoul(s_.substr(i_, 4), nullptr, 16);
          i_ += 4;
          // Enough for the tests: ASCII as is, anything else as UTF-8 of a BMP code point.
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
          } else {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
          }
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  Json value() {
    skip_space();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    char c = s_[i_];
    if (c == '{') {
      v.kind = Json::kObject;
      ++i_;
      if (accept('}')) return v;
      do {
        std::string key = string();
        expect(':');
        if (!v.fields.emplace(key, value()).second) fail("duplicate key");
      } while (accept(','));
      expect('}');
    } else if (c == '[') {
      v.kind = Json::kArray;
      ++i_;
      if (accept(']')) return v;
      do v.items.push_back(value());
      while (accept(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Json::kString;
      v.string = string();
    } else if (literal("true") || literal("false")) {
      v.kind = Json::kBool;
    } else if (literal("null")) {
      v.kind = Json::kNull;
    } else {
      size_t used = 0;
      v.kind = Json::kNumber;
      std::string rest = s_.substr(i_, 40);
      if (rest.empty() || !(rest[0] == '-' || (rest[0] >= '0' && rest[0] <= '9')))
        fail("bad value");
      v.number = std::stod(rest, &used);
      i_ += used;
    }
    return v;
  }

  const std::string& s_;
  size_t i_ = 0;
};

Json parse(const std::string& text) { return JsonReader(text).document(); }

// The golden files say "pyflame VERSION", so that a release does not
// rewrite them; the exporter field itself is checked below.
std::string without_version(std::string text) {
  const std::string exporter = std::string("\"pyflame ") + PYFLAME_VERSION + "\"";
  auto at = text.find(exporter);
  REQUIRE(at != std::string::npos);
  return text.replace(at, exporter.size(), "\"pyflame VERSION\"");
}

// The frame names of one sample, root first.
std::vector<std::string> names(const Json& doc, const Json& sample) {
  std::vector<std::string> out;
  for (const Json& index : sample.items)
    out.push_back(doc["shared"]["frames"][static_cast<size_t>(index.number)]["name"].string);
  return out;
}

}  // namespace

TEST_CASE("speedscope writer matches its golden files") {
  core::Profile timed = test::fixture_profile();
  test::check_golden("speedscope.json", without_version(core::write_speedscope(timed)));
  // Each thread is its own profile already, so --threads changes nothing.
  CHECK(core::write_speedscope(test::fixture_profile(true)) == core::write_speedscope(timed));

  core::Profile aggregated = test::fixture_profile();
  aggregated.timeline.clear();
  test::check_golden("speedscope_aggregated.json",
                     without_version(core::write_speedscope(aggregated)));
}

TEST_CASE("speedscope file names threads, frames and the exporter") {
  core::Profile p = test::fixture_profile();
  Json doc = parse(core::write_speedscope(p));
  CHECK(doc["$schema"].string == "https://www.speedscope.app/file-format-schema.json");
  CHECK(doc["exporter"].string == std::string("pyflame ") + PYFLAME_VERSION);
  CHECK(doc["name"].string == p.target);
  CHECK(doc["activeProfileIndex"].number == 0);

  const Json& frames = doc["shared"]["frames"];
  REQUIRE(frames.items.size() == p.frames.size());
  for (size_t i = 0; i < p.frames.size(); ++i) {
    CHECK(frames[i]["name"].string == p.frames[i].function);
    CHECK(frames[i]["file"].string == p.frames[i].filename);
    if (p.frames[i].line > 0)
      CHECK(frames[i]["line"].number == p.frames[i].line);
    else
      CHECK_FALSE(frames[i].has("line"));  // <unknown> has no line
  }

  const Json& profiles = doc["profiles"];
  REQUIRE(profiles.items.size() == 2);
  CHECK(profiles[0]["name"].string == "thread 'python3' (tid 100)");
  CHECK(profiles[1]["name"].string == "thread 'worker <1>' (tid 101)");
  CHECK(names(doc, profiles[0]["samples"][0]) ==
        std::vector<std::string>{"<module>", "App.run", "hot"});
  CHECK(names(doc, profiles[1]["samples"][1]) == std::vector<std::string>{"loop"});
}

TEST_CASE("speedscope weights add up to samples times the interval") {
  for (bool timeline : {true, false}) {
    core::Profile p = test::fixture_profile();
    p.interval_seconds = 0.003;
    if (!timeline) p.timeline.clear();
    INFO("timeline " << timeline);
    Json doc = parse(core::write_speedscope(p));
    double sum = 0;
    for (size_t t = 0; t < p.threads.size(); ++t) {
      const Json& profile = doc["profiles"][t];
      CHECK(profile["type"].string == "sampled");
      CHECK(profile["unit"].string == "seconds");
      CHECK(profile["startValue"].number == 0);
      REQUIRE(profile["samples"].items.size() == profile["weights"].items.size());
      double thread_sum = 0;
      for (const Json& w : profile["weights"].items) thread_sum += w.number;
      CHECK(thread_sum == Approx(profile["endValue"].number).epsilon(1e-9));
      uint64_t thread_samples = 0;
      for (const core::ProfileStack& s : p.stacks)
        if (s.thread == t) thread_samples += s.count;
      CHECK(thread_sum == Approx(thread_samples * p.interval_seconds).epsilon(1e-9));
      sum += thread_sum;
    }
    CHECK(sum == Approx(p.total_samples() * p.interval_seconds).epsilon(1e-9));
  }
}

TEST_CASE("speedscope samples follow the timeline and merge only consecutive repeats") {
  core::Profile p = test::fixture_profile();
  // Interleave: hot, warm, warm, hot on the main thread, a worker sample
  // between the two warms (it must not split the run), then hot again.
  const uint32_t hot = 0, warm = 1, worker_loop = 5;
  REQUIRE(p.stacks[worker_loop].thread == 1);
  p.timeline = {{0.00, hot}, {0.01, warm}, {0.02, worker_loop}, {0.03, warm}, {0.04, hot}};
  Json doc = parse(core::write_speedscope(p));
  const Json& main = doc["profiles"][0];
  REQUIRE(main["samples"].items.size() == 3);
  CHECK(names(doc, main["samples"][0]).back() == "hot");
  CHECK(names(doc, main["samples"][1]).back() == "warm");
  CHECK(names(doc, main["samples"][2]).back() == "hot");
  CHECK(main["weights"][0].number == Approx(0.01));
  CHECK(main["weights"][1].number == Approx(0.02));
  CHECK(main["weights"][2].number == Approx(0.01));
  CHECK(main["endValue"].number == Approx(0.04));
  const Json& worker = doc["profiles"][1];
  REQUIRE(worker["samples"].items.size() == 1);
  CHECK(names(doc, worker["samples"][0]) == std::vector<std::string>{"loop"});
}

TEST_CASE("speedscope file of an empty profile is whole and has no profiles") {
  core::Profile p;
  p.pid = 7;
  std::string text = core::write_speedscope(p);
  Json doc = parse(text);
  CHECK(doc["shared"]["frames"].items.empty());
  CHECK(doc["profiles"].items.empty());
  CHECK(doc["name"].string == "pid 7");
  CHECK_FALSE(doc.has("activeProfileIndex"));  // no profile to point at
  test::check_golden("speedscope_empty.json", without_version(text));
}

TEST_CASE("speedscope strings are escaped and stay valid UTF-8") {
  core::Profile p;
  p.target = "t";
  core::ProfileBuilder builder(p);
  core::ThreadSample thread;
  thread.thread_id = 1;
  // A 2.7 byte-string file name that is not UTF-8, and control characters.
  thread.frames = {core::Frame{"f\"\\\n\x01", std::nullopt, "/tmp/caf\xe9.py", 0}};
  builder.add(thread);
  Json doc = parse(core::write_speedscope(p));
  const Json& frame = doc["shared"]["frames"][0];
  CHECK(frame["name"].string == "f\"\\\n\x01");
  CHECK(frame["file"].string == "/tmp/caf\xef\xbf\xbd.py");  // U+FFFD
  CHECK_FALSE(frame.has("line"));
  CHECK(doc["profiles"][0]["name"].string == "thread (ident 0x1)");
}

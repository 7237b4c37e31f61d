// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/output/top_table.h"

using namespace pyflame::core;

namespace {

// A thread sample whose frames are `names`, innermost first; each name is
// its own code object (key) in file "f.py", line 10 + its index.
ThreadSample sample(uint64_t thread, std::vector<std::string_view> names) {
  ThreadSample t;
  t.thread_id = thread;
  t.native_id = static_cast<int64_t>(100 + thread);
  t.name = "t" + std::to_string(thread);
  for (std::string_view n : names) {
    Frame f;
    f.function = n;
    f.filename = "f.py";
    f.line = 10 + static_cast<int>(n.size());
    f.code_key = std::hash<std::string_view>()(n) | 1;
    t.frames.push_back(f);
  }
  return t;
}

const TopRow* row(const std::vector<TopRow>& rows, const std::string& name) {
  for (const TopRow& r : rows)
    if (r.function == name) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("top counts own at the innermost frame and total once a stack") {
  TopTable table;
  table.add(sample(1, {"leaf", "rec", "rec", "rec", "main"}));  // recursion: rec once
  table.add(sample(1, {"rec", "main"}));
  table.end_interval();
  TopView view;
  auto rows = table.rows(view);
  REQUIRE(row(rows, "rec") != nullptr);
  CHECK(row(rows, "rec")->own == 1);
  CHECK(row(rows, "rec")->total == 2);
  CHECK(row(rows, "leaf")->own == 1);
  CHECK(row(rows, "main")->own == 0);
  CHECK(row(rows, "main")->total == 2);
  CHECK(table.samples(view) == 2);
  CHECK(rows.front().own == 1);  // sorted by own, then total
}

TEST_CASE("top keeps the last interval apart from the whole run") {
  TopTable table;
  table.add(sample(1, {"a"}));
  table.add(sample(1, {"a"}));
  table.end_interval();
  table.add(sample(1, {"b"}));
  table.end_interval();
  TopView last;
  TopView whole;
  whole.whole_run = true;
  CHECK(row(table.rows(last), "a") == nullptr);
  CHECK(row(table.rows(last), "b")->own == 1);
  CHECK(table.samples(last) == 1);
  CHECK(row(table.rows(whole), "a")->own == 2);
  CHECK(table.samples(whole) == 3);
}

TEST_CASE("top filters by thread and by name, and sorts as asked") {
  TopTable table;
  table.add(sample(1, {"alpha"}));
  table.add(sample(2, {"beta"}));
  table.add(sample(2, {"beta"}));
  table.end_interval();
  REQUIRE(table.threads().size() == 2);
  TopView one;
  one.thread = 0;
  auto rows = table.rows(one);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].function == "alpha");
  CHECK(table.samples(one) == 1);
  TopView named;
  named.filter = "bet";
  CHECK(table.rows(named).size() == 1);
  TopView by_name;
  by_name.sort = TopSort::kName;
  CHECK(table.rows(by_name).front().function == "alpha");
  by_name.reverse = true;
  CHECK(table.rows(by_name).front().function == "beta");
  TopView by_own;
  CHECK(table.rows(by_own).front().function == "beta");
  by_own.reverse = true;
  CHECK(table.rows(by_own).front().function == "alpha");
}

TEST_CASE("names from the target cannot drive the terminal") {
  CHECK(terminal_text("ok\x1b[2Jx", 80) == "ok?[2Jx");
  CHECK(terminal_text("a\nb\x7f", 80) == "a?b?");
  CHECK(terminal_text("\xff\xfe", 80) == "??");
  CHECK(terminal_text("f\xc3\xban", 80) == "f\xc3\xban");  // fún: kept
  CHECK(terminal_text("\xc2\x9b" "31m", 80) == "?31m");   // C1 CSI
  CHECK(terminal_text("abcdef", 3) == "abc");
  CHECK(terminal_text("\xc3\xba\xc3\xba\xc3\xba", 2) == "\xc3\xba\xc3\xba");  // columns, not bytes
}

TEST_CASE("a row too wide loses the start of its path, not its file and line") {
  std::vector<TopRow> rows = {{"fn", "/very/long/path/to/some/module.py", 42, 1, 1}};
  auto lines = format_top_rows(rows, 1, 60, 0);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].size() <= 60);
  CHECK(lines[1].find("module.py:42)") != std::string::npos);
  CHECK(lines[1].find("...") != std::string::npos);
}

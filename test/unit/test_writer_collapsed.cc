// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "core/output/writers.h"
#include "golden.h"
#include "profile_fixture.h"

using namespace pyflame;

TEST_CASE("collapsed writer matches its golden file") {
  test::check_golden("collapsed.txt", core::write_collapsed(test::fixture_profile()));
  test::check_golden("collapsed_threads.txt", core::write_collapsed(test::fixture_profile(true)));
}

TEST_CASE("flamechart writer lists every sample in time order") {
  test::check_golden("flamechart.txt", core::write_flamechart(test::fixture_profile()));
}

TEST_CASE("collapsed lines keep one space before the count and no ';' inside a frame") {
  std::string text = core::write_collapsed(test::fixture_profile());
  uint64_t total = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    total += std::stoull(line.substr(space + 1));
    CHECK(line.find("fn;with") == std::string::npos);
  }
  CHECK(total == test::fixture_profile().total_samples());
}

TEST_CASE("profile builder interns frames, threads and stacks") {
  core::Profile p = test::fixture_profile();
  CHECK(p.threads.size() == 2);
  CHECK(p.stacks.size() == 6);
  CHECK(p.frames.size() == 7);
  CHECK(p.total_samples() == 100);
  CHECK(p.timeline.size() == 100);
}

TEST_CASE("output format from name and file extension") {
  CHECK(core::format_for_path("out.svg") == core::OutputFormat::kFlamegraph);
  CHECK(core::format_for_path("p.json") == core::OutputFormat::kSpeedscope);
  CHECK(core::format_for_path("p.pb.gz") == core::OutputFormat::kPprof);
  CHECK(core::format_for_path("out.txt") == core::OutputFormat::kCollapsed);
  CHECK_FALSE(core::format_for_path("profile"));
  CHECK(core::parse_format("svg") == core::OutputFormat::kFlamegraph);
  CHECK_FALSE(core::parse_format("html"));
}

TEST_CASE("a C frame is labelled with its library's file name (--native)") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  core::ThreadSample t;
  t.thread_id = 1;
  const core::Frame spin = test::native_frame("int ns::spin<int>(int)", "/srv/lib/native_cpp.so", 1,
                                              "spin.cc", 9);
  const core::Frame marker = test::native_frame("[native stack not unwound further]", "", 0);
  core::Frame caller{"caller", std::nullopt, "/srv/app.py", 3};
  t.frames = {spin, caller};
  builder.add(t, 2);
  t.frames = {spin, marker, caller};
  builder.add(t, 1);
  CHECK(core::write_collapsed(p) ==
        "caller (/srv/app.py:3);[native stack not unwound further];int ns::spin<int>(int) [native_cpp.so] 1\n"
        "caller (/srv/app.py:3);int ns::spin<int>(int) [native_cpp.so] 2\n");
}

TEST_CASE("--subprocesses: each process is a root, and code keys stay within their process") {
  core::Profile p;
  p.process_roots = true;
  p.processes = {{100, "python3 parent.py", "3.11.7"}, {101, "python2.7 child.py", "2.7.18"}};
  core::ProfileBuilder builder(p);
  // Both interpreters number their code objects from 1, and fork makes
  // thread idents equal too: neither may merge the two processes' frames
  // or threads.
  core::ThreadSample parent;
  parent.thread_id = 7;
  parent.frames = {core::Frame{"wait", std::nullopt, "parent.py", 5, 1}};
  core::ThreadSample child;
  child.thread_id = 7;
  child.frames = {core::Frame{"hot_child", std::nullopt, "child.py", 5, 1}};
  builder.add(parent, 3, 0);
  builder.add(child, 2, 1);
  builder.add(child, 1, 1);
  CHECK(p.threads.size() == 2);
  CHECK(p.frames.size() == 2);
  CHECK(core::write_collapsed(p) ==
        "process 100: python3 parent.py;wait (parent.py:5) 3\n"
        "process 101: python2.7 child.py;hot_child (child.py:5) 3\n");
  p.thread_roots = true;
  CHECK(core::write_collapsed(p) ==
        "process 100: python3 parent.py;thread (ident 0x7);wait (parent.py:5) 3\n"
        "process 101: python2.7 child.py;thread (ident 0x7);hot_child (child.py:5) 3\n");
  // The flame graph and speedscope name the process too.
  CHECK(core::write_flamegraph_svg(p).find("process 101: python2.7 child.py") != std::string::npos);
  CHECK(core::write_speedscope(p).find("process 100: python3 parent.py / thread (ident 0x7)") !=
        std::string::npos);
}

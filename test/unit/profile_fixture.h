// SPDX-License-Identifier: Apache-2.0
// A fixed profile for the writers' golden tests: two threads, shared and
// distinct frames, a frame without a line, names that need escaping in
// every format (quotes, <, &, ;, non-ASCII) and a timeline.
#pragma once

#include <optional>
#include <string_view>

#include "core/output/profile.h"

namespace pyflame::test {

// A C frame as --native makes one: `key` tells frames apart (the native
// bit set), `library` is the mapping's path ("" for the marker). Frames
// hold views: pass strings that outlive them (literals).
inline core::Frame native_frame(std::string_view function, std::string_view library, uint64_t key,
                                std::string_view filename = "",
                                std::optional<int> line = std::nullopt) {
  core::Frame f;
  f.kind = core::FrameKind::kNative;
  f.function = function;
  f.library = library;
  f.filename = filename;
  f.line = line;
  f.code_key = core::kNativeKeyBit | key;
  return f;
}

inline core::Profile fixture_profile(bool thread_roots = false) {
  using core::Frame;
  using core::ThreadSample;
  core::Profile p;
  p.pid = 4242;
  p.python_version = "3.11.7";
  p.target = "python3 app.py --name \"x\"";
  p.interval_seconds = 0.01;
  p.duration_seconds = 1.5;
  p.thread_roots = thread_roots;
  core::ProfileBuilder builder(p);

  ThreadSample main;
  main.thread_id = 0x7f0000001000;
  main.native_id = 100;
  main.name = "python3";
  ThreadSample worker;
  worker.thread_id = 0x7f0000002000;
  worker.native_id = 101;
  worker.name = "worker <1>";

  Frame module{"<module>", std::nullopt, "/srv/app.py", 40};
  Frame run{"run", "App.run", "/srv/app.py", 12};
  Frame hot{"hot", std::nullopt, "/srv/lib/hot.py", 7};
  Frame warm{"warm", std::nullopt, "/srv/lib/hot.py", 19};
  Frame odd{"fn;with\"quotes\"&<tags>", std::nullopt, "/srv/dir ñ/関.py", 3};
  Frame unknown{"<unknown>", std::nullopt, "<unknown>", std::nullopt};
  Frame loop{"loop", std::nullopt, "/usr/lib/python3.11/threading.py", 1009};

  auto stack = [](ThreadSample t, std::vector<Frame> innermost_first) {
    t.frames = std::move(innermost_first);
    return t;
  };
  double t = 0;
  auto add = [&](const ThreadSample& s, int n) {
    for (int i = 0; i < n; ++i) {
      uint32_t id = builder.add(s);
      p.timeline.push_back({t, id});
      t += 0.01;
    }
  };
  add(stack(main, {hot, run, module}), 50);
  add(stack(main, {warm, run, module}), 30);
  add(stack(main, {odd, module}), 5);
  add(stack(main, {unknown, run, module}), 2);
  add(stack(worker, {hot, loop}), 10);
  add(stack(worker, {loop}), 3);
  return p;
}

}  // namespace pyflame::test

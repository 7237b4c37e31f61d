// SPDX-License-Identifier: Apache-2.0
// The pprof writer: a golden file, and the profile read back through a small
// protobuf decoder written here from profile.proto's field numbers, so the
// checks do not depend on the writer's own encoder.
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "core/output/writers.h"
#include "golden.h"
#include "profile_fixture.h"

using namespace pyflame;

namespace {

std::string gunzip(const std::string& data) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);  // gzip wrapper only
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[4096];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - z.avail_out);
  }
  inflateEnd(&z);
  REQUIRE(rc == Z_STREAM_END);
  REQUIRE(z.avail_in == 0);  // nothing after the gzip member
  return out;
}

// One field of a protobuf message: varint (wire type 0) or length-delimited (2).
struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t value = 0;
  std::string bytes;
};

uint64_t read_varint(const std::string& data, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    REQUIRE(pos < data.size());
    auto byte = static_cast<uint8_t>(data[pos++]);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return v;
  }
  FAIL("varint longer than 10 bytes");
  return 0;
}

std::vector<Field> decode(const std::string& data) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < data.size()) {
    uint64_t tag = read_varint(data, pos);
    Field f;
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire = static_cast<uint32_t>(tag & 7);
    REQUIRE(f.number != 0);
    if (f.wire == 0) {
      f.value = read_varint(data, pos);
    } else {
      REQUIRE(f.wire == 2);  // the writer needs no fixed-width fields
      uint64_t size = read_varint(data, pos);
      REQUIRE(size <= data.size() - pos);
      f.bytes = data.substr(pos, size);
      pos += size;
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

// A repeated scalar, packed or not.
std::vector<uint64_t> scalars(const Field& f) {
  if (f.wire == 0) return {f.value};
  std::vector<uint64_t> values;
  for (size_t pos = 0; pos < f.bytes.size();) values.push_back(read_varint(f.bytes, pos));
  return values;
}

struct Function {
  std::string name, system_name, filename;
  int64_t start_line = 0;
};
struct Location {
  uint64_t mapping_id = 0;
  uint64_t function_id = 0;
  int64_t line = 0;
};
struct Sample {
  std::vector<uint64_t> location_ids;
  std::vector<int64_t> values;
  std::map<std::string, std::string> str_labels;
  std::map<std::string, int64_t> num_labels;
};
struct Decoded {
  std::vector<std::string> strings;
  std::vector<std::pair<std::string, std::string>> sample_types;
  std::pair<std::string, std::string> period_type;
  int64_t period = 0, duration_nanos = 0, time_nanos = 0;
  std::vector<std::string> comments;
  std::map<uint64_t, std::vector<Field>> mappings;
  std::map<uint64_t, Function> functions;
  std::map<uint64_t, Location> locations;
  std::vector<Sample> samples;

  const std::string& str(uint64_t index) const {
    REQUIRE(index < strings.size());
    return strings[index];
  }
  // Function names of a sample's stack, in the file's order (leaf first).
  std::vector<std::string> stack(const Sample& s) const {
    std::vector<std::string> names;
    for (uint64_t id : s.location_ids) names.push_back(functions.at(locations.at(id).function_id).name);
    return names;
  }
};

Decoded decode_profile(const std::string& gz) {
  const std::vector<Field> top = decode(gunzip(gz));
  Decoded p;
  for (const Field& f : top)  // strings first: everything else refers to them
    if (f.number == 6) p.strings.push_back(f.bytes);
  REQUIRE_FALSE(p.strings.empty());
  auto value_type = [&](const Field& f) {
    std::pair<std::string, std::string> vt;
    for (const Field& g : decode(f.bytes)) {
      if (g.number == 1) vt.first = p.str(g.value);
      if (g.number == 2) vt.second = p.str(g.value);
    }
    return vt;
  };
  for (const Field& f : top) {
    switch (f.number) {
      case 1: p.sample_types.push_back(value_type(f)); break;
      case 2: {
        Sample s;
        for (const Field& g : decode(f.bytes)) {
          if (g.number == 1)
            for (uint64_t v : scalars(g)) s.location_ids.push_back(v);
          if (g.number == 2)
            for (uint64_t v : scalars(g)) s.values.push_back(static_cast<int64_t>(v));
          if (g.number == 3) {
            uint64_t key = 0, str = 0;
            int64_t num = 0;
            for (const Field& h : decode(g.bytes)) {
              if (h.number == 1) key = h.value;
              if (h.number == 2) str = h.value;
              if (h.number == 3) num = static_cast<int64_t>(h.value);
            }
            if (str != 0)
              s.str_labels[p.str(key)] = p.str(str);
            else
              s.num_labels[p.str(key)] = num;
          }
        }
        p.samples.push_back(std::move(s));
        break;
      }
      case 3: {
        std::vector<Field> mapping = decode(f.bytes);
        REQUIRE_FALSE(mapping.empty());
        REQUIRE(mapping[0].number == 1);
        REQUIRE(p.mappings.emplace(mapping[0].value, mapping).second);
        break;
      }
      case 4: {
        uint64_t id = 0;
        Location loc;
        int lines = 0;
        for (const Field& g : decode(f.bytes)) {
          if (g.number == 1) id = g.value;
          if (g.number == 2) loc.mapping_id = g.value;
          if (g.number == 4) {
            ++lines;
            for (const Field& h : decode(g.bytes)) {
              if (h.number == 1) loc.function_id = h.value;
              if (h.number == 2) loc.line = static_cast<int64_t>(h.value);
            }
          }
        }
        CHECK(lines == 1);  // no inlining in Python
        REQUIRE(id != 0);
        REQUIRE(p.locations.emplace(id, loc).second);  // ids are unique
        break;
      }
      case 5: {
        uint64_t id = 0;
        Function fn;
        for (const Field& g : decode(f.bytes)) {
          if (g.number == 1) id = g.value;
          if (g.number == 2) fn.name = p.str(g.value);
          if (g.number == 3) fn.system_name = p.str(g.value);
          if (g.number == 4) fn.filename = p.str(g.value);
          if (g.number == 5) fn.start_line = static_cast<int64_t>(g.value);
        }
        REQUIRE(id != 0);
        REQUIRE(p.functions.emplace(id, fn).second);
        break;
      }
      case 9: p.time_nanos = static_cast<int64_t>(f.value); break;
      case 10: p.duration_nanos = static_cast<int64_t>(f.value); break;
      case 11: p.period_type = value_type(f); break;
      case 12: p.period = static_cast<int64_t>(f.value); break;
      case 13:
        for (uint64_t v : scalars(f)) p.comments.push_back(p.str(v));
        break;
      default: break;
    }
  }
  // Every reference resolves, as pprof requires.
  for (const auto& [id, loc] : p.locations) {
    REQUIRE(p.functions.count(loc.function_id) == 1);
    REQUIRE((loc.mapping_id == 0 || p.mappings.count(loc.mapping_id) == 1));
  }
  for (const Sample& s : p.samples)
    for (uint64_t id : s.location_ids) REQUIRE(p.locations.count(id) == 1);
  return p;
}

}  // namespace

TEST_CASE("pprof writer matches its golden file") {
  const std::string actual = core::write_pprof(test::fixture_profile());
  // The same profile gives the same bytes: a fixed gzip header (mtime 0).
  CHECK(actual == core::write_pprof(test::fixture_profile()));
  REQUIRE(actual.size() > 10);
  CHECK(actual.substr(0, 4) == std::string("\x1f\x8b\x08\x00", 4));  // gzip, deflate, no flags
  CHECK(actual.substr(4, 4) == std::string(4, '\0'));                  // mtime 0
  // test/golden/pprof.pb.gz is also the input of the `go tool pprof` test.
  test::check_golden("pprof.pb.gz", actual);
}

TEST_CASE("pprof profile decodes to the fixture's samples, leaf first") {
  const core::Profile fixture = test::fixture_profile();
  const Decoded p = decode_profile(core::write_pprof(fixture));

  CHECK(p.strings[0].empty());
  for (const char* s : {"hot", "App.run", "<module>", "fn;with\"quotes\"&<tags>", "/srv/dir ñ/関.py",
                        "/srv/lib/hot.py", "<unknown>", "python3 app.py --name \"x\""})
    CHECK(std::count(p.strings.begin(), p.strings.end(), s) == 1);  // each string once

  using Pair = std::pair<std::string, std::string>;
  CHECK(p.sample_types == std::vector<Pair>{{"samples", "count"}, {"cpu", "nanoseconds"}});
  CHECK(p.period_type == Pair{"cpu", "nanoseconds"});
  CHECK(p.period == 10'000'000);
  CHECK(p.duration_nanos == 1'500'000'000);
  CHECK(p.time_nanos == 0);
  CHECK(p.comments == std::vector<std::string>{"python3 app.py --name \"x\"", "pid 4242", "Python 3.11.7"});

  // One Function per (name, file); one Location per distinct frame.
  CHECK(p.functions.size() == 7);
  CHECK(p.locations.size() == 7);
  for (const auto& [id, fn] : p.functions) {
    // Left unset: pprof would "demangle" a name equal to its system_name.
    CHECK(fn.system_name.empty());
    CHECK(fn.start_line == 0);
  }
  // One mapping, marked as symbolized (has_functions, has_filenames,
  // has_line_numbers), holding every location: pprof then looks for no binary.
  REQUIRE(p.mappings.size() == 1);
  std::map<uint32_t, uint64_t> flags;
  for (const Field& f : p.mappings.begin()->second) flags[f.number] = f.value;
  CHECK(flags[7] == 1);
  CHECK(flags[8] == 1);
  CHECK(flags[9] == 1);
  for (const auto& [id, loc] : p.locations) CHECK(loc.mapping_id == p.mappings.begin()->first);

  REQUIRE(p.samples.size() == 6);
  int64_t count = 0, nanos = 0;
  std::map<std::vector<std::string>, int64_t> stacks;
  for (const Sample& s : p.samples) {
    REQUIRE(s.values.size() == 2);
    count += s.values[0];
    nanos += s.values[1];
    CHECK(s.values[1] == s.values[0] * 10'000'000);
    stacks[p.stack(s)] += s.values[0];
  }
  CHECK(count == 100);
  CHECK(nanos == 1'000'000'000);
  using Stack = std::vector<std::string>;
  CHECK(stacks == std::map<Stack, int64_t>{
                      {{"hot", "App.run", "<module>"}, 50},
                      {{"warm", "App.run", "<module>"}, 30},
                      {{"fn;with\"quotes\"&<tags>", "<module>"}, 5},
                      {{"<unknown>", "App.run", "<module>"}, 2},
                      {{"hot", "loop"}, 10},
                      {{"loop"}, 3},
                  });

  // Lines and files of the leaf of the hottest stack.
  const Sample& first = p.samples[0];
  REQUIRE(first.values[0] == 50);
  const Location& leaf = p.locations.at(first.location_ids[0]);
  CHECK(leaf.line == 7);
  CHECK(p.functions.at(leaf.function_id).filename == "/srv/lib/hot.py");
  const Location& root = p.locations.at(first.location_ids.back());
  CHECK(root.line == 40);
  CHECK(p.functions.at(root.function_id).filename == "/srv/app.py");
  // The frame without a line keeps line 0 ("unknown").
  for (const Sample& s : p.samples)
    if (p.stack(s)[0] == "<unknown>") CHECK(p.locations.at(s.location_ids[0]).line == 0);

  // Thread labels: the same text as the other writers' thread roots, and the TID.
  std::map<std::string, int64_t> per_thread;
  for (const Sample& s : p.samples) {
    REQUIRE(s.str_labels.count("thread") == 1);
    REQUIRE(s.num_labels.count("thread_id") == 1);
    per_thread[s.str_labels.at("thread") + " = " + std::to_string(s.num_labels.at("thread_id"))] +=
        s.values[0];
  }
  CHECK(per_thread == std::map<std::string, int64_t>{{"thread 'python3' (tid 100) = 100", 87},
                                                     {"thread 'worker <1>' (tid 101) = 101", 13}});
}

TEST_CASE("pprof keeps threads in labels under --threads") {
  CHECK(core::write_pprof(test::fixture_profile(true)) == core::write_pprof(test::fixture_profile()));
}

TEST_CASE("pprof writes stacks without frames and threads without a TID") {
  core::Profile profile;
  profile.interval_seconds = 0.001;
  core::ProfileBuilder builder(profile);
  core::ThreadSample idle;  // an idle thread under --idle: no Python frames
  idle.thread_id = 0x1234;
  builder.add(idle, 3);
  core::ThreadSample busy;
  busy.thread_id = 0x5678;
  busy.frames = {{"f", std::nullopt, "/a.py", 1}};
  builder.add(busy, uint64_t{5'000'000'000});  // values past 32 bits
  const Decoded p = decode_profile(core::write_pprof(profile));

  REQUIRE(p.samples.size() == 2);
  CHECK(p.stack(p.samples[0]) == std::vector<std::string>{"<no Python frames>"});
  CHECK(p.samples[0].values == std::vector<int64_t>{3, 3'000'000});
  CHECK(p.stack(p.samples[1]) == std::vector<std::string>{"f"});
  CHECK(p.samples[1].values == std::vector<int64_t>{5'000'000'000, 5'000'000'000'000'000});
  for (const Sample& s : p.samples) CHECK(s.num_labels.empty());  // no TID known
  CHECK(p.samples[0].str_labels.at("thread") == "thread (ident 0x1234)");
  CHECK(p.period == 1'000'000);
  CHECK(p.comments.empty());
}

TEST_CASE("pprof of an empty profile is a valid empty profile") {
  const Decoded p = decode_profile(core::write_pprof(core::Profile{}));
  CHECK(p.samples.empty());
  CHECK(p.functions.empty());
  CHECK(p.strings[0].empty());
  CHECK(p.sample_types.size() == 2);
}

TEST_CASE("pprof puts each C library's frames in a mapping of its own (--native)") {
  core::Profile p;
  core::ProfileBuilder builder(p);
  core::ThreadSample t;
  t.thread_id = 1;
  const core::Frame spin = test::native_frame("ext_spin", "/srv/lib/native_ext.so", 1);
  const core::Frame wait = test::native_frame("clock_nanosleep", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                              2, "clock_nanosleep.c", 48);
  core::Frame caller{"caller", std::nullopt, "/srv/app.py", 3};
  t.frames = {spin, caller};
  builder.add(t, 2);
  t.frames = {wait, caller};
  builder.add(t, 1);
  const Decoded d = decode_profile(core::write_pprof(p));
  // Python's mapping, then one per library, named by its path.
  REQUIRE(d.mappings.size() == 3);
  std::map<std::string, uint64_t> mapping_of_file;
  for (const auto& [id, fields] : d.mappings)
    for (const Field& f : fields)
      if (f.number == 5) mapping_of_file[d.strings.at(f.value)] = id;
  REQUIRE(mapping_of_file.size() == 2);
  std::map<std::string, std::string> library_of_function;
  for (const auto& [id, loc] : d.locations) {
    const std::string& name = d.functions.at(loc.function_id).name;
    for (const auto& [file, mapping] : mapping_of_file)
      if (loc.mapping_id == mapping) library_of_function[name] = file;
  }
  CHECK(library_of_function == std::map<std::string, std::string>{
                                   {"ext_spin [native_ext.so]", "/srv/lib/native_ext.so"},
                                   {"clock_nanosleep [libc.so.6]", "/usr/lib/x86_64-linux-gnu/libc.so.6"}});
}

// SPDX-License-Identifier: Apache-2.0
// vm_readv_floor: the cost of one process_vm_readv call against a running
// process, for the benchmark's floor (docs/benchmarks.md).
//
//   vm_readv_floor -p PID [--sizes 64,1024,16384] [--pair A,B] [--gather N,BYTES]
//                  [--ranges S1,S2,...] [--iterations N] [--json]
//
// Reads from the target's heap (or its largest private writable mapping)
// again and again, timing each call alone with CLOCK_MONOTONIC, and reports
// the median and 99th percentile per size; then the same for one call that
// gathers two ranges (a thread state and a data-stack chunk, as a 3.11+
// sample can once it knows both addresses), for one call gathering N small
// ranges (the frames of a <= 3.10 stack), and for a chain of dependent
// calls. --ranges times one call of ranges of exactly those sizes, each on
// pages of its own: given the read set pyflame reports (--stats-json
// last_read_sizes), what the kernel alone charges for it. Nothing here knows
// Python: the floor is the kernel's price.
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Region {
  uintptr_t start = 0;
  uintptr_t end = 0;
  std::string name;
};

// The heap if it is big enough, else the largest private writable mapping:
// memory the target really uses, so its pages are present.
bool pick_region(pid_t pid, size_t need, Region& out) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  if (!maps) return false;
  std::string line;
  Region best;
  bool have_heap = false;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in, path);
    path.erase(0, path.find_first_not_of(' '));
    if (perms.size() < 4 || perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') continue;
    Region r;
    r.start = std::strtoull(range.c_str(), nullptr, 16);
    r.end = std::strtoull(range.c_str() + range.find('-') + 1, nullptr, 16);
    r.name = path.empty() ? "[anon]" : path;
    if (r.end - r.start < need) continue;
    if (path == "[heap]") {
      out = r;
      have_heap = true;
    } else if (!have_heap && path.find('[') != 0 &&
               r.end - r.start > best.end - best.start) {
      best = r;
    }
  }
  if (!have_heap) out = best;
  return out.end > out.start;
}

double now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Stats {
  double median = 0;
  double p99 = 0;
  double min = 0;
  size_t failures = 0;
};

Stats summarize(std::vector<double>& us, size_t failures) {
  Stats s;
  s.failures = failures;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.min = us.front();
  s.median = us[us.size() / 2];
  s.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return s;
}

// Times `iterations` calls of process_vm_readv with the given remote ranges
// (local buffers alongside); `chain` calls in a row count as one measurement.
Stats measure(pid_t pid, const std::vector<iovec>& remote, int iterations, int chain) {
  size_t total = 0;
  for (const iovec& r : remote) total += r.iov_len;
  std::vector<char> buffer(total);
  std::vector<iovec> local;
  size_t at = 0;
  for (const iovec& r : remote) {
    local.push_back({buffer.data() + at, r.iov_len});
    at += r.iov_len;
  }
  std::vector<double> us;
  us.reserve(static_cast<size_t>(iterations));
  size_t failures = 0;
  // Warm up: the first reads fault pages into the target's page tables.
  for (int i = 0; i < 100; ++i)
    process_vm_readv(pid, local.data(), local.size(), remote.data(), remote.size(), 0);
  for (int i = 0; i < iterations; ++i) {
    double t0 = now_us();
    bool ok = true;
    for (int c = 0; c < chain; ++c) {
      ssize_t n = process_vm_readv(pid, local.data(), local.size(), remote.data(),
                                   remote.size(), 0);
      ok = ok && n == static_cast<ssize_t>(total);
    }
    double t1 = now_us();
    if (ok)
      us.push_back(t1 - t0);
    else
      ++failures;
  }
  return summarize(us, failures);
}

std::vector<size_t> parse_sizes(const char* text) {
  std::vector<size_t> sizes;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) sizes.push_back(std::strtoull(item.c_str(), nullptr, 10));
  return sizes;
}

int usage() {
  std::fprintf(stderr,
               "usage: vm_readv_floor -p PID [--sizes 64,1024,16384] [--iterations N] "
               "[--pair A,B] [--gather N,BYTES] [--ranges S1,S2,...] [--chain N] [--json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  pid_t pid = 0;
  int iterations = 20000;
  int chain = 2;
  bool json = false;
  std::vector<size_t> sizes = {64, 1024, 4096, 16384, 65536};
  std::vector<size_t> pair = {1024, 16384};
  int gather_ranges = 0;          // --gather N,BYTES: one call of N ranges
  size_t gather_bytes = 0;
  const size_t gather_stride = 1024;  // ranges apart, as heap frames are
  std::vector<size_t> shape;          // --ranges: one call of these sizes
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if ((a == "-p" || a == "--pid") && has_value)
      pid = static_cast<pid_t>(std::atoi(argv[++i]));
    else if (a == "--sizes" && has_value)
      sizes = parse_sizes(argv[++i]);
    else if (a == "--pair" && has_value)
      pair = parse_sizes(argv[++i]);
    else if (a == "--iterations" && has_value)
      iterations = std::max(1, std::atoi(argv[++i]));
    else if (a == "--chain" && has_value)
      chain = std::max(1, std::atoi(argv[++i]));
    else if (a == "--gather" && has_value) {
      std::vector<size_t> g = parse_sizes(argv[++i]);
      if (g.size() != 2 || g[0] == 0 || g[0] > 1024 || g[1] == 0 || g[1] > gather_stride)
        return usage();
      gather_ranges = static_cast<int>(g[0]);
      gather_bytes = g[1];
    } else if (a == "--ranges" && has_value) {
      shape = parse_sizes(argv[++i]);
      if (shape.empty() || shape.size() > 1024) return usage();
    } else if (a == "--json")
      json = true;
    else
      return usage();
  }
  if (pid <= 0 || sizes.empty() || pair.size() != 2) return usage();

  size_t second_at = (pair[0] + 4095) & ~size_t{4095};  // the second range on its own page
  // --ranges: each range starts on a page of its own, a page apart.
  std::vector<size_t> shape_at;
  size_t shape_end = 0;
  for (size_t size : shape) {
    shape_at.push_back(shape_end);
    shape_end += ((size + 4095) & ~size_t{4095}) + 4096;
  }
  size_t need = std::max({*std::max_element(sizes.begin(), sizes.end()), second_at + pair[1],
                          static_cast<size_t>(gather_ranges) * gather_stride, shape_end});
  Region region;
  if (!pick_region(pid, need, region)) {
    std::fprintf(stderr, "vm_readv_floor: no readable mapping of %zu bytes in process %d\n",
                 need, pid);
    return 1;
  }
  char probe[8];
  iovec l{probe, sizeof probe}, r{reinterpret_cast<void*>(region.start), sizeof probe};
  if (process_vm_readv(pid, &l, 1, &r, 1, 0) != static_cast<ssize_t>(sizeof probe)) {
    std::fprintf(stderr, "vm_readv_floor: cannot read process %d: %s\n", pid,
                 std::strerror(errno));
    return 1;
  }

  struct Row {
    std::string what;
    size_t bytes;
    int calls;
    Stats stats;
  };
  std::vector<Row> rows;
  for (size_t size : sizes) {
    std::vector<iovec> one = {{reinterpret_cast<void*>(region.start), size}};
    rows.push_back({"single", size, 1, measure(pid, one, iterations, 1)});
  }
  // Two ranges, one call: what the batched reads of a sample cost.
  uintptr_t second = region.start + second_at;
  std::vector<iovec> two = {{reinterpret_cast<void*>(region.start), pair[0]},
                            {reinterpret_cast<void*>(second), pair[1]}};
  rows.push_back({"gather2", pair[0] + pair[1], 1, measure(pid, two, iterations, 1)});
  // Many small ranges in one call: every frame of a <= 3.10 stack (heap
  // objects), gathered at once by a sampler that trusts the last sample's
  // addresses and checks them afterwards.
  if (gather_ranges > 0) {
    std::vector<iovec> many;
    for (int k = 0; k < gather_ranges; ++k)
      many.push_back({reinterpret_cast<void*>(region.start + static_cast<size_t>(k) * gather_stride),
                      gather_bytes});
    rows.push_back({"gather" + std::to_string(gather_ranges), gather_bytes * many.size(), 1,
                    measure(pid, many, iterations, 1)});
  }
  if (!shape.empty()) {
    std::vector<iovec> ranges;
    size_t bytes = 0;
    for (size_t k = 0; k < shape.size(); ++k) {
      ranges.push_back({reinterpret_cast<void*>(region.start + shape_at[k]), shape[k]});
      bytes += shape[k];
    }
    rows.push_back({"shape" + std::to_string(shape.size()), bytes, 1, measure(pid, ranges, iterations, 1)});
  }
  // Dependent calls in a row (thread state, then its chunk): one per hop.
  std::vector<iovec> small = {{reinterpret_cast<void*>(region.start), pair[0]}};
  rows.push_back({"chain", pair[0], chain, measure(pid, small, iterations, chain)});

  if (json) {
    std::printf("{\"pid\": %d, \"region\": \"%s\", \"iterations\": %d, \"reads\": [", pid,
                region.name.c_str(), iterations);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      std::printf("%s{\"kind\": \"%s\", \"bytes\": %zu, \"calls\": %d, \"us_median\": %.3f, "
                  "\"us_p99\": %.3f, \"us_min\": %.3f, \"failures\": %zu}",
                  i ? ", " : "", row.what.c_str(), row.bytes, row.calls, row.stats.median,
                  row.stats.p99, row.stats.min, row.stats.failures);
    }
    std::printf("]}\n");
  } else {
    std::printf("process_vm_readv against pid %d (%s), %d calls each\n", pid,
                region.name.c_str(), iterations);
    std::printf("%-8s %8s %5s %10s %10s %10s\n", "kind", "bytes", "calls", "median_us",
                "p99_us", "min_us");
    for (const Row& row : rows)
      std::printf("%-8s %8zu %5d %10.3f %10.3f %10.3f\n", row.what.c_str(), row.bytes,
                  row.calls, row.stats.median, row.stats.p99, row.stats.min);
  }
  return 0;
}

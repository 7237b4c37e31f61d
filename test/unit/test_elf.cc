// SPDX-License-Identifier: Apache-2.0
// ELF symbol lookup and load bias, checked against where the loader really
// put a symbol in a running process, for each kind of file.
#include <catch2/catch.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

#include "core/target/elf.h"
#include "core/errors.h"
#include "core/target/process.h"

using pyflame::core::ElfFile;
using pyflame::core::Process;

namespace {

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
  FILE* in = nullptr;
  uint64_t marker = 0;
};

Child start(const std::string& exe) {
  int to_child[2], from_child[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(from_child) == 0);
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    execl(exe.c_str(), exe.c_str(), nullptr);
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  c.in = fdopen(to_child[1], "w");
  c.out = fdopen(from_child[0], "r");
  REQUIRE(fscanf(c.out, "%lx", &c.marker) == 1);
  return c;
}

void stop(Child& c) {
  fputc('\n', c.in);
  fclose(c.in);
  fclose(c.out);
  int status = 0;
  waitpid(c.pid, &status, 0);
}

void check_executable(const std::string& path, bool pie, bool stripped) {
  ElfFile elf(path);
  CHECK(elf.is_shared_object() == pie);
  CHECK(elf.has_symtab() == !stripped);
  CHECK(elf.symbol("pyflame_test_hidden").has_value() == !stripped);
  CHECK_FALSE(elf.symbol("no_such_symbol"));
  Child child = start(path);
  Process process(child.pid);
  auto bias = elf.load_bias(process.maps(), path);
  REQUIRE(bias);
  if (!pie) CHECK(*bias == 0);
  auto value = elf.symbol("pyflame_test_marker");
  REQUIRE(value);
  CHECK(*value + *bias == child.marker);
  // And the memory there is the marker's.
  auto read = process.read_value<int>(pyflame::core::RemoteAddr(*value + *bias));
  CHECK(read == 42);
  stop(child);
}

}  // namespace

TEST_CASE("ELF: PIE executable, with and without .symtab") {
  check_executable(PYFLAME_FIXTURE_PIE, true, false);
  check_executable(PYFLAME_FIXTURE_PIE_STRIPPED, true, true);
}

TEST_CASE("ELF: non-PIE executable, with and without .symtab") {
  check_executable(PYFLAME_FIXTURE_NOPIE, false, false);
  check_executable(PYFLAME_FIXTURE_NOPIE_STRIPPED, false, true);
}

TEST_CASE("ELF: shared library symbols are found through .dynsym") {
  ElfFile elf(PYFLAME_FIXTURE_SO);
  CHECK(elf.is_shared_object());
  CHECK(elf.symbol("pyflame_test_marker"));
  CHECK(elf.symbol("pyflame_test_use"));
}

// pyflame-detect finds a command's libpython from these, as the loader would.
TEST_CASE("ELF: needed libraries and run path from the dynamic section") {
  using Paths = std::vector<std::string>;
  for (const char* path : {PYFLAME_FIXTURE_PIE, PYFLAME_FIXTURE_PIE_STRIPPED}) {
    const pyflame::core::ElfDynamic dyn = ElfFile(path).dynamic();
    CHECK(std::find(dyn.needed.begin(), dyn.needed.end(), "libc.so.6") != dyn.needed.end());
    CHECK(dyn.run_path == Paths{"/pyflame-test/one", "/pyflame-test/two"});  // DT_RUNPATH
  }
  CHECK(ElfFile(PYFLAME_FIXTURE_NOPIE).dynamic().run_path == Paths{"/pyflame-test/old"});  // DT_RPATH
  CHECK(ElfFile(PYFLAME_FIXTURE_SO).dynamic().run_path.empty());
}

TEST_CASE("ELF: a file that is not ELF is a clear error") {
  CHECK_THROWS_AS(ElfFile("/etc/hostname"), pyflame::core::Error);
  CHECK_THROWS_AS(ElfFile("/nonexistent/file"), pyflame::core::Error);
}

// A target's owner can truncate a file while pyflame reads it. Read through
// a mapping (libelf's ELF_C_READ_MMAP and elf_rawfile, before) that was
// SIGBUS, which kills the profiler; read with pread it is a short read.
TEST_CASE("ELF: a file truncated after it was opened is refused, not a crash") {
  char dir[] = "/tmp/pyflame-elf-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/lib.so";
  {
    FILE* in = fopen(PYFLAME_FIXTURE_SO, "rb");
    FILE* out = fopen(path.c_str(), "wb");
    REQUIRE(in);
    REQUIRE(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
  }
  ElfFile elf(path);
  REQUIRE_FALSE(elf.sections().empty());
  REQUIRE(truncate(path.c_str(), 0) == 0);
  for (const auto& section : elf.sections())
    if (!section.nobits && section.size > 0) CHECK_FALSE(elf.section_bytes(section));
  CHECK(elf.symbol("pyflame_test_marker"));  // indexed before, still answers
  unlink(path.c_str());
  rmdir(dir);
}

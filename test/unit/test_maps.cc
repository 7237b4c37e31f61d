// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "core/target/maps.h"
#include "core/target/process.h"

namespace core = pyflame::core;

using pyflame::core::parse_maps;
using pyflame::core::strip_deleted;

TEST_CASE("maps: parses the kernel's format, paths with spaces and deleted files") {
  auto maps = parse_maps(
      "55d0c8a00000-55d0c8a2c000 r--p 00000000 fe:01 1835213                    /usr/bin/python3.11\n"
      "7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 \n"
      "7f1c2b000000-7f1c2b100000 r-xp 0001a000 fe:01 42   /opt/my dir/libpython3.9.so.1.0 (deleted)\n"
      "7ffd5e5f0000-7ffd5e611000 rw-p 00000000 00:00 0                          [stack]\n");
  REQUIRE(maps.size() == 4);
  CHECK(maps[0].start == 0x55d0c8a00000);
  CHECK(maps[0].end == 0x55d0c8a2c000);
  CHECK(maps[0].readable);
  CHECK_FALSE(maps[0].writable);
  CHECK(maps[0].inode == 1835213);
  CHECK(maps[0].dev_major == 0xfe);
  CHECK(maps[0].dev_minor == 0x01);
  CHECK(maps[0].path == "/usr/bin/python3.11");
  CHECK(maps[1].path.empty());
  CHECK(maps[1].writable);
  CHECK(maps[2].executable);
  CHECK(maps[2].offset == 0x1a000);
  CHECK(maps[2].path == "/opt/my dir/libpython3.9.so.1.0 (deleted)");
  CHECK(strip_deleted(maps[2].path) == "/opt/my dir/libpython3.9.so.1.0");
  CHECK(maps[3].path == "[stack]");
}

TEST_CASE("maps: malformed lines are skipped, never trusted") {
  auto maps = parse_maps(
      "garbage\n"
      "zzzz-1000 r--p 0 0 0\n"
      "2000-1000 r--p 00000000 00:00 0 /backwards\n"
      "1000-2000\n"
      "1000-2000 r--p 00000000 0001 0 /no-device-colon\n"
      "1000-2000 r--p 00000000 00:00 0 /ok\n"
      "\n");
  REQUIRE(maps.size() == 1);
  CHECK(maps[0].path == "/ok");
}

TEST_CASE("maps: survives arbitrary bytes") {
  std::string text;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245 + 12345;
    text += "0123456789abcdef- rwxp\n/"[(x >> 16) % 24];
  }
  CHECK_NOTHROW(parse_maps(text));
}

TEST_CASE("stat fields are counted after the last ')' of the command name") {
  // A process may name itself anything, spaces and parentheses included.
  const std::string stat = "4242 (evil) 9 ) S 1 4242 4242 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 777 ";
  CHECK(core::state_from_stat(stat) == 'S');
  CHECK(core::stat_number(stat, 4) == 1u);      // ppid
  CHECK(core::stat_number(stat, 9) == 4194560u);  // flags
  CHECK(core::stat_number(stat, 22) == 777u);     // start time
  CHECK_FALSE(core::stat_number(stat, 23));       // past the end
  CHECK_FALSE(core::stat_number(stat, 3));        // the state is a letter
  CHECK_FALSE(core::stat_number("no parenthesis 1 2 3", 4));
}

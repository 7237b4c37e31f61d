// SPDX-License-Identifier: Apache-2.0
#include "core/native/unwinder.h"
#include "core/native/unwinder_internals.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/log.h"

namespace pyflame::core {
namespace {

constexpr uint64_t kChunkBytes = 16 * 1024;    // stack read per miss
constexpr size_t kMaxStackBytes = 8u << 20;    // read per unwind, at most
constexpr size_t kMaxLocations = 1u << 16;     // cached addresses before the cache is dropped
constexpr size_t kMaxUnmappedPages = 4096;      // remembered pages of code in no file


// Debug information only from the system's build-id tree (root's files,
// found by the code's identity): never from a path the target's files name,
// which its owner controls (a FIFO there would hang us).
int find_debuginfo_by_build_id(Dwfl_Module* module, void** /*userdata*/, const char* /*modname*/,
                               Dwarf_Addr /*base*/, const char* /*file_name*/,
                               const char* /*debuglink_file*/, GElf_Word /*debuglink_crc*/,
                               char** debuginfo_file_name) {
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  const int length = dwfl_module_build_id(module, &bits, &vaddr);
  if (length < 2 || length > 64) return -1;
  std::string path = fmt::format("/usr/lib/debug/.build-id/{:02x}/", bits[0]);
  for (int i = 1; i < length; ++i) path += fmt::format("{:02x}", bits[i]);
  path += ".debug";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return -1;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return -1;
  }
  *debuginfo_file_name = ::strdup(path.c_str());
  return fd;
}

int find_no_elf(Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**) { return -1; }

const Dwfl_Callbacks kDwflCallbacks = {
    .find_elf = find_no_elf,  // every module is reported with its descriptor
    .find_debuginfo = find_debuginfo_by_build_id,
    .section_address = nullptr,
    .debuginfo_path = nullptr,
};

// libelf maps the files it reads: one that its owner truncates afterwards
// would kill us with SIGBUS on the next read of the lost pages. A file that
// anyone but root may write is therefore read through a private copy (a
// memfd), taken once; root's files, not writable by others, are read in
// place. Returns the descriptor to use (FD, or the copy; FD is closed
// then), or -1 if the copy failed.
int private_copy_if_writable(int fd) {
  constexpr off_t kMaxCopyBytes = off_t{1} << 30;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return -1;
  }
  if (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0) return fd;
  int copy = -1;
  if (st.st_size > 0 && st.st_size <= kMaxCopyBytes) copy = ::memfd_create("pyflame-elf", MFD_CLOEXEC);
  std::vector<char> buffer(1 << 16);
  off_t at = 0;
  while (copy >= 0 && at < st.st_size) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), at);
    if (n <= 0 || ::write(copy, buffer.data(), static_cast<size_t>(n)) != n) {
      ::close(copy);
      copy = -1;
      break;
    }
    at += n;
  }
  ::close(fd);
  return copy;
}

}  // namespace


namespace {
const Dwfl_Thread_Callbacks kThreadCallbacks = {
    .next_thread = Unwinder::Internals::next_thread,
    .get_thread = Unwinder::Internals::get_thread,
    .memory_read = Unwinder::Internals::memory_read,
    .set_initial_registers = Unwinder::Internals::set_initial_registers,
    .detach = nullptr,
    .thread_detach = nullptr,
};
}  // namespace

Unwinder::Unwinder(const TargetImage& process, NativeFrameRules rules)
    : process_(process), rules_(std::move(rules)), internals_(std::make_unique<Internals>()) {
  internals_->dwfl = dwfl_begin(&kDwflCallbacks);
  if (internals_->dwfl == nullptr)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: --native: libdwfl: {}", dwfl_errmsg(-1)));
  report_modules();
  if (!dwfl_attach_state(internals_->dwfl, nullptr, process_.pid(), &kThreadCallbacks, this))
    throw Error(ExitCode::kFailure,
                fmt::format("pyflame: --native: cannot unwind process {}: {}", process_.pid(),
                            dwfl_errmsg(-1)));
  internals_->attached = true;
}

Unwinder::~Unwinder() { dwfl_end(internals_->dwfl); }

void Unwinder::report_modules() {
  std::vector<Mapping> maps;
  try {
    maps = process_.maps();
  } catch (const Error& e) {
    PYFLAME_DEBUG_LOG("--native: cannot read the maps: {}", e.what());
    return;
  }
  // Each file once, at the address its offset 0 would have: the lowest
  // mapping of the file says where (start - offset).
  struct FileMaps {
    const Mapping* lowest = nullptr;
    bool executable = false;
  };
  std::map<std::tuple<uint64_t, uint64_t, std::string>, FileMaps> files;
  std::map<std::string, FileMaps> by_path_inode;
  const Mapping* vdso = nullptr;
  for (const Mapping& m : maps) {
    if (m.path == "[vdso]") vdso = &m;
    if (m.inode == 0 || m.path.empty() || m.path[0] != '/') continue;
    auto key = fmt::format("{}:{}:{}", m.dev_major, m.dev_minor, m.inode) + m.path;
    FileMaps& f = by_path_inode[key];
    if (f.lowest == nullptr || m.offset < f.lowest->offset) f.lowest = &m;
    f.executable |= m.executable;
  }
  dwfl_report_begin_add(internals_->dwfl);
  for (const auto& [key, f] : by_path_inode) {
    if (!f.executable) continue;
    const Mapping& m = *f.lowest;
    auto id = std::make_tuple(m.start, m.inode, m.path);
    if (internals_->reported.count(id)) continue;
    internals_->reported.insert(id);
    int fd = -1;
    try {
      fd = private_copy_if_writable(process_.open_mapped_file(m));
    } catch (const Error& e) {
      PYFLAME_DEBUG_LOG("--native: {} is not unwound: {}", m.path, e.what());
      continue;
    }
    if (fd < 0) continue;
    const std::string name(strip_deleted(m.path));
    if (dwfl_report_elf(internals_->dwfl, name.c_str(), name.c_str(), fd, m.start - m.offset,
                        false) == nullptr) {
      PYFLAME_DEBUG_LOG("--native: {} is not unwound: {}", m.path, dwfl_errmsg(-1));
      ::close(fd);
    }
  }
  // The vDSO is in no file: its image is copied from the target.
  if (vdso != nullptr && !internals_->reported.count({vdso->start, 0, "[vdso]"}) &&
      vdso->end - vdso->start <= (1u << 20)) {
    internals_->reported.insert({vdso->start, 0, "[vdso]"});
    std::vector<std::byte> image(vdso->end - vdso->start);
    const int fd = ::memfd_create("pyflame-vdso", MFD_CLOEXEC);
    if (fd >= 0 && process_.read(RemoteAddr(vdso->start), image) &&
        ::write(fd, image.data(), image.size()) == static_cast<ssize_t>(image.size()) &&
        dwfl_report_elf(internals_->dwfl, "[vdso]", "[vdso]", fd, vdso->start, false) != nullptr) {
      // reported: libdwfl owns the descriptor
    } else if (fd >= 0) {
      ::close(fd);
    }
  }
  dwfl_report_end(internals_->dwfl, nullptr, nullptr);
}

bool Unwinder::read_word(uint64_t address, uint64_t& word) {
  for (const Chunk& c : chunks_) {
    if (address >= c.base && address - c.base + sizeof word <= c.bytes.size()) {
      std::memcpy(&word, c.bytes.data() + (address - c.base), sizeof word);
      return true;
    }
  }
  if (chunk_bytes_read_ >= kMaxStackBytes) return false;
  Chunk c;
  c.base = address & ~(kChunkBytes - 1);
  c.bytes.resize(kChunkBytes);
  const size_t got = process_.read_prefix(RemoteAddr(c.base), c.bytes);
  chunk_bytes_read_ += kChunkBytes;
  if (got < address - c.base + sizeof word) {
    // Not readable from the chunk's start: the word alone may still be.
    return process_.read(RemoteAddr(address), std::as_writable_bytes(std::span(&word, 1)));
  }
  c.bytes.resize(got);
  std::memcpy(&word, c.bytes.data() + (address - c.base), sizeof word);
  chunks_.push_back(std::move(c));
  return true;
}

void Unwinder::begin_sample() {
  if (locations_.size() > kMaxLocations) {
    by_address_.clear();
    locations_.clear();
    keys_.clear();
  }
}

void Unwinder::unwind(pid_t tid, const Registers& registers, NativeStack& out) {
  struct Walk {
    Unwinder* self;
    NativeStack* out;
    bool bounded = false;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    out.frames.clear();
    out.stack_pointers.clear();
    out.complete = false;
    chunks_.clear();
    chunk_bytes_read_ = 0;
    registers_ = &registers;
    internals_->saw_unmapped = false;
    Walk walk{this, &out};
    const int result = dwfl_getthread_frames(
        internals_->dwfl, tid,
        [](Dwfl_Frame* frame, void* arg) -> int {
          auto* w = static_cast<Walk*>(arg);
          Dwarf_Addr pc = 0;
          bool activation = false;
          if (!dwfl_frame_pc(frame, &pc, &activation)) return DWARF_CB_ABORT;
          if (w->out->frames.size() >= kMaxNativeFrames) {
            w->bounded = true;
            return DWARF_CB_ABORT;
          }
          Dwarf_Word sp = 0;
          if (dwfl_frame_reg(frame, Registers::kStackPointer, &sp) != 0) sp = 0;
          for (const NativeLocation* loc = w->self->locate(pc, activation); loc != nullptr;
               loc = loc->outer) {
            w->out->frames.push_back(loc);
            w->out->stack_pointers.push_back(sp);
          }
          return DWARF_CB_OK;
        },
        &walk);
    registers_ = nullptr;
    out.complete = result == 0 && !walk.bounded;
    if (!out.complete)
      PYFLAME_DEBUG_LOG("--native: thread {} unwound {} frames, then: {}", tid, out.frames.size(),
                        walk.bounded ? "the bound" : dwfl_errmsg(-1));
    // An address in no file, on a page not seen before: a library mapped
    // since the files were last reported (dlopen). Report them again and
    // unwind again, also after a complete unwind: without the file's CFI,
    // libdwfl may have gone on by frame pointers. A page still in no file
    // then (a JIT's code) is remembered and never makes us look again.
    if (!internals_->saw_unmapped) return;
    if (attempt == 1) {
      // Still in no file after a fresh look: not a file's code.
      if (internals_->unmapped_pages.size() > kMaxUnmappedPages) internals_->unmapped_pages.clear();
      for (const NativeLocation* loc : out.frames)
        if (loc->library == "?") {  // looked up at the address, or the byte before it
          internals_->remember_unmapped(loc->address);
          internals_->remember_unmapped(loc->address - 1);
        }
      return;
    }
    report_modules();
  }
}

}  // namespace pyflame::core

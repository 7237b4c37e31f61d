// SPDX-License-Identifier: Apache-2.0
#include "core/target/core_file.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/errors.h"
#include "core/log.h"
#include "core/target/elf.h"
#include "core/target/elf_notes.h"
#include "core/target/regular_file.h"

namespace pyflame::core {

// A mapped file as opened for reading the pages the core left out: -1 when
// no candidate was the file that was mapped (`why` says what was tried).
struct CoreFile::OpenedFile {
  int fd = -1;
  uint64_t size = 0;
  bool verified = false;  // its build-id matched the core's copy
  bool elf = false;       // only an ELF file has a build-id to check
  std::string opened_path;
  std::string why;
  ~OpenedFile() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

std::string_view base_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

template <typename T>
bool load(std::string_view bytes, size_t at, T& out) {
  if (at > bytes.size() || bytes.size() - at < sizeof(T)) return false;
  std::memcpy(&out, bytes.data() + at, sizeof(T));
  return true;
}

}  // namespace

CoreFile::CoreFile(const std::string& path, CoreFileOptions options)
    : path_(path), options_(std::move(options)) {
  struct stat st;
  fd_ = open_regular_file(path, /*follow=*/true, st);
  if (fd_ < 0)
    throw Error(ExitCode::kBadCore, fmt::format("pyflame: cannot open core file {}: {}", path,
                                                std::strerror(errno)));
  size_ = static_cast<uint64_t>(st.st_size);
  try {
    index();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

CoreFile::~CoreFile() {
  opened_.clear();
  if (fd_ >= 0) ::close(fd_);
}

std::string CoreFile::describe() const {
  return fmt::format("core file {} (process {})", path_, pid_);
}

void CoreFile::index() {
  auto bad = [&](const std::string& why) {
    return Error(ExitCode::kBadCore, fmt::format("pyflame: {} is not a core file pyflame can read: {}",
                                                 path_, why));
  };
  Elf64_Ehdr ehdr;
  if (!read_exact_at(fd_, 0, &ehdr, sizeof ehdr) || std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0)
    throw bad("not an ELF file");
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_ident[EI_DATA] != ELFDATA2LSB)
    throw bad("not a 64-bit little-endian ELF file");
  if (ehdr.e_type != ET_CORE)
    throw bad("an ELF file, but not a core dump (make one with `gcore PID`, or see core(5))");
  if (ehdr.e_machine != EM_X86_64) throw bad("the core of a machine other than x86-64");
  if (ehdr.e_phentsize != sizeof(Elf64_Phdr)) throw bad("bad program header size");

  uint64_t phnum = ehdr.e_phnum;
  if (phnum == PN_XNUM) {  // the real count is in section 0
    Elf64_Shdr shdr0;
    if (ehdr.e_shoff == 0 || !read_exact_at(fd_, ehdr.e_shoff, &shdr0, sizeof shdr0))
      throw bad("more than 65535 segments, and no section 0 to count them");
    phnum = shdr0.sh_info;
  }
  if (phnum > CoreLimits::kMaxSegments)
    throw bad(fmt::format("{} segments, more than the {} pyflame reads", phnum, CoreLimits::kMaxSegments));
  if (ehdr.e_phoff > size_ || phnum * sizeof(Elf64_Phdr) > size_ - ehdr.e_phoff)
    throw bad(fmt::format("its program headers lie past its end ({} bytes): the file is truncated", size_));
  std::vector<Elf64_Phdr> phdrs(phnum);
  if (!read_exact_at(fd_, ehdr.e_phoff, phdrs.data(), phnum * sizeof(Elf64_Phdr)))
    throw bad("cannot read its program headers");

  std::string notes;
  for (const Elf64_Phdr& p : phdrs) {
    if (p.p_offset > size_ || p.p_filesz > size_ - p.p_offset)
      throw bad(fmt::format("a segment at 0x{:x} needs bytes up to {} of the file, which has {}: "
                            "the file is truncated (the disk filled, or the dump was cut short)",
                            p.p_vaddr, p.p_offset + p.p_filesz, size_));
    if (p.p_type == PT_LOAD) {
      if (p.p_filesz > p.p_memsz || p.p_vaddr + p.p_memsz < p.p_vaddr)
        throw bad(fmt::format("a malformed segment at 0x{:x}", p.p_vaddr));
      // An empty one holds no memory: it maps nothing (libFuzzer found one
      // turned into an empty mapping).
      if (p.p_memsz > 0) segments_.push_back({p.p_vaddr, p.p_memsz, p.p_offset, p.p_filesz, p.p_flags});
    } else if (p.p_type == PT_NOTE) {
      if (p.p_filesz > CoreLimits::kMaxNotes - notes.size())
        throw bad(fmt::format("more than {} bytes of notes", CoreLimits::kMaxNotes));
      std::string segment(p.p_filesz, '\0');
      if (!read_exact_at(fd_, p.p_offset, segment.data(), segment.size())) throw bad("cannot read its notes");
      read_notes(segment);
    }
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.vaddr < b.vaddr; });
  for (size_t i = 1; i < segments_.size(); ++i)
    if (segments_[i].vaddr < segments_[i - 1].vaddr + segments_[i - 1].memsz)
      throw bad(fmt::format("overlapping segments at 0x{:x}", segments_[i].vaddr));
  std::sort(files_.begin(), files_.end(),
            [](const MappedFile& a, const MappedFile& b) { return a.start < b.start; });
  if (threads_.empty()) throw bad("no thread (NT_PRSTATUS note) in it");
  if (segments_.empty()) throw bad("no memory (PT_LOAD segment) in it");
  if (files_.empty()) throw bad("no list of mapped files (NT_FILE note): a core of Linux 3.7 or later is needed");

  maps_ = derive_maps();
  // The executable: the mapping holding its program headers (AT_PHDR).
  for (const MappedFile& f : files_)
    if (phdr_addr_ >= f.start && phdr_addr_ < f.end) exe_path_ = f.path;
  if (exe_path_.empty()) exe_path_ = files_.front().path;
  PYFLAME_INFO_LOG("{}: {} segments, {} mapped files, {} threads, executable {}", describe(),
                   segments_.size(), files_.size(), threads_.size(), exe_path_);
}

void CoreFile::read_notes(std::string_view notes) {
  for_each_note(notes, [&](const ElfNote& n) {
    if (n.name != "CORE") return;
    if (n.type == NT_PRSTATUS) {
      elf_prstatus status;
      if (!load(n.desc, 0, status)) return;
      CoreThread t;
      t.tid = status.pr_pid;
#if defined(__x86_64__)
      user_regs_struct regs;
      static_assert(sizeof regs == sizeof status.pr_reg);
      std::memcpy(&regs, &status.pr_reg, sizeof regs);
      t.registers = registers_from(regs);
#endif
      // The first NT_PRSTATUS is the thread that dumped (or, from gcore, the main one).
      if (threads_.empty()) pid_ = status.pr_pid;
      threads_.push_back(t);
    } else if (n.type == NT_PRPSINFO) {
      elf_prpsinfo info;
      if (load(n.desc, 0, info) && info.pr_pid > 0) pid_ = info.pr_pid;
    } else if (n.type == NT_AUXV) {
      for (size_t at = 0; at + 16 <= n.desc.size(); at += 16) {
        uint64_t key = 0, value = 0;
        load(n.desc, at, key);
        load(n.desc, at + 8, value);
        if (key == AT_PHDR) phdr_addr_ = value;
      }
    } else if (n.type == NT_FILE) {
      // count, page size, then count (start, end, page offset), then the names.
      uint64_t count = 0, page = 0;
      if (!load(n.desc, 0, count) || !load(n.desc, 8, page) || count > CoreLimits::kMaxMappedFiles ||
          count * 24 > n.desc.size() - 16 || page == 0 || (page & (page - 1)) != 0)
        return;
      size_t name_at = 16 + count * 24;
      for (uint64_t i = 0; i < count; ++i) {
        MappedFile f;
        uint64_t pages = 0;
        load(n.desc, 16 + i * 24, f.start);
        load(n.desc, 24 + i * 24, f.end);
        load(n.desc, 32 + i * 24, pages);
        if (name_at >= n.desc.size()) break;
        size_t end = n.desc.find('\0', name_at);
        if (end == std::string_view::npos) end = n.desc.size();
        f.path = std::string(n.desc.substr(name_at, end - name_at));
        name_at = end + 1;
        if (f.end <= f.start || pages > UINT64_MAX / page) continue;
        f.offset = pages * page;
        files_.push_back(std::move(f));
      }
    }
  });
}

std::vector<Mapping> CoreFile::maps() const { return maps_; }

std::vector<Mapping> CoreFile::derive_maps() const {
  // Each mapped file, with the permissions of the segment that holds it,
  // then the memory no file backs (heaps, stacks), as anonymous mappings.
  std::vector<Mapping> out;
  auto in_segment = [&](uint64_t addr) {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                               [](uint64_t a, const Segment& s) { return a < s.vaddr; });
    return it != segments_.begin() && addr < std::prev(it)->vaddr + std::prev(it)->memsz;
  };
  auto flags_at = [&](uint64_t addr) -> uint32_t {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                               [](uint64_t a, const Segment& s) { return a < s.vaddr; });
    if (it == segments_.begin()) return 0;
    --it;
    return addr < it->vaddr + it->memsz ? it->flags : 0;
  };
  // A file mapping that gcore left out has no segment to say its
  // permissions: one nobody wrote, so read-only, and perhaps code (the
  // unwinder reads the CFI of a file with a mapping that may be).
  std::map<std::string, uint64_t> file_numbers;
  for (const MappedFile& f : files_) {
    Mapping m;
    m.start = f.start;
    m.end = f.end;
    const uint32_t flags = in_segment(f.start) ? flags_at(f.start) : PF_R | PF_X;
    m.readable = flags & PF_R;
    m.writable = flags & PF_W;
    m.executable = flags & PF_X;
    m.offset = f.offset;
    m.path = f.path;
    // No inode in a core: a number per path, nonzero as a file's is.
    m.inode = file_numbers.emplace(f.path, file_numbers.size() + 1).first->second;
    out.push_back(std::move(m));
  }
  for (const Segment& s : segments_) {
    bool file_backed = false;
    for (const MappedFile& f : files_)
      if (f.start < s.vaddr + s.memsz && s.vaddr < f.end) file_backed = true;
    if (file_backed) continue;
    Mapping m;
    m.start = s.vaddr;
    m.end = s.vaddr + s.memsz;
    m.readable = s.flags & PF_R;
    m.writable = s.flags & PF_W;
    m.executable = s.flags & PF_X;
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const Mapping& a, const Mapping& b) { return a.start < b.start; });
  return out;
}

int CoreFile::open_checked(const std::string& candidate, const std::string& path, std::string& why,
                           bool& verified, bool& elf) const {
  struct stat st;
  int fd = open_regular_file(candidate, /*follow=*/true, st);
  if (fd < 0) {
    why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", candidate, std::strerror(errno));
    return -1;
  }
  // Every mapping of the file must lie within it (a page's tail may not).
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  for (const MappedFile& f : files_) {
    if (f.path != path) continue;
    const uint64_t file_pages = (size + 4095) & ~uint64_t{4095};
    if (f.offset > file_pages || f.end - f.start > file_pages - f.offset) {
      why += fmt::format("{}{}: {} bytes, smaller than the process had mapped", why.empty() ? "" : "; ",
                         candidate, size);
      ::close(fd);
      return -1;
    }
  }
  // An ELF file's build-id, where the core holds the page with its note.
  verified = false;
  elf = false;
  try {
    ElfFile file(::fcntl(fd, F_DUPFD_CLOEXEC, 0), candidate);
    elf = true;
    if (const auto& id = file.build_id()) {
      if (auto bias = file.load_bias(maps_, path)) {
        std::string dumped(id->bytes.size(), '\0');
        if (read_dumped(id->vaddr + *bias, std::as_writable_bytes(std::span(dumped)))) {
          if (dumped != id->bytes) {
            why += fmt::format("{}{}: another build of the file (its build-id differs from the core's)",
                               why.empty() ? "" : "; ", candidate);
            ::close(fd);
            return -1;
          }
          verified = true;
        }
      }
    }
  } catch (const Error&) {
    // Not ELF (a data file): the size check is all there is.
  }
  return fd;
}

const CoreFile::OpenedFile* CoreFile::mapped_file(const std::string& path) const {
  auto it = opened_.find(path);
  if (it != opened_.end()) return it->second.get();
  if (opened_.size() >= static_cast<size_t>(CoreLimits::kMaxOpenFiles)) {
    // Keep the ones that failed (cheap) and drop an open one.
    for (auto i = opened_.begin(); i != opened_.end(); ++i)
      if (i->second->fd >= 0) {
        opened_.erase(i);
        break;
      }
  }
  auto file = std::make_unique<OpenedFile>();
  std::vector<std::string> candidates;
  const std::string recorded(strip_deleted(path));
  if (options_.executable && path == exe_path_) candidates.push_back(*options_.executable);
  if (!recorded.empty() && recorded.front() == '/') candidates.push_back(recorded);
  for (const std::string& dir : options_.lib_search)
    candidates.push_back(dir + "/" + std::string(base_name(recorded)));
  for (const std::string& c : candidates) {
    bool verified = false, elf = false;
    int fd = open_checked(c, path, file->why, verified, elf);
    if (fd < 0) continue;
    struct stat st;
    ::fstat(fd, &st);
    file->fd = fd;
    file->size = static_cast<uint64_t>(st.st_size);
    file->verified = verified;
    file->elf = elf;
    file->opened_path = c;
    if (c != recorded) PYFLAME_INFO_LOG("{}: {} read from {}", describe(), path, c);
    break;
  }
  if (file->why.empty() && file->fd < 0) file->why = "no path to look at";
  return opened_.emplace(path, std::move(file)).first->second.get();
}

int CoreFile::open_mapped_file(const Mapping& m) const {
  const OpenedFile* f = mapped_file(m.path);
  if (f->fd < 0)
    throw Error(ExitCode::kMissingFile,
                fmt::format("pyflame: {} needs {}, which it had mapped, and it was not found as "
                            "mapped ({}); give the directory that holds a copy with --lib-search DIR",
                            describe(), m.path, f->why));
  int fd = ::fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw Error(ExitCode::kFailure, fmt::format("pyflame: dup: {}", std::strerror(errno)));
  return fd;
}

int CoreFile::open_executable() const {
  Mapping m;
  m.path = exe_path_;
  return open_mapped_file(m);
}

std::vector<std::string> CoreFile::unverified_files() const {
  std::vector<std::string> out;
  for (const auto& [path, f] : opened_)
    if (f->fd >= 0 && f->elf && !f->verified) out.push_back(f->opened_path);
  return out;
}

bool CoreFile::read_dumped(uint64_t addr, std::span<std::byte> into) const {
  while (!into.empty()) {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                               [](uint64_t a, const Segment& s) { return a < s.vaddr; });
    if (it == segments_.begin()) return false;
    --it;
    const uint64_t in_segment = addr - it->vaddr;
    if (in_segment >= it->filesz) return false;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(into.size(), it->filesz - in_segment));
    if (!read_exact_at(fd_, it->offset + in_segment, into.data(), n)) return false;
    addr += n;
    into = into.subspan(n);
  }
  return true;
}

size_t CoreFile::read_piece(uint64_t addr, std::span<std::byte> into) const {
  // The bytes end at the end of the mapping they are in, and file bytes at
  // the next segment that the core holds.
  uint64_t end = UINT64_MAX;
  auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                             [](uint64_t a, const Segment& s) { return a < s.vaddr; });
  if (it != segments_.end()) end = it->vaddr;
  if (it != segments_.begin()) {
    const Segment& s = *std::prev(it);
    const uint64_t in_segment = addr - s.vaddr;
    if (in_segment < s.filesz) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(into.size(), s.filesz - in_segment));
      return read_exact_at(fd_, s.offset + in_segment, into.data(), n) ? n : 0;
    }
    if (in_segment < s.memsz) end = s.vaddr + s.memsz;
  }
  // Left out of the dump (the kernel writes the segment without its bytes,
  // gdb's gcore leaves it out): the mapped file's bytes, if a file backs them.
  auto f = std::upper_bound(files_.begin(), files_.end(), addr,
                            [](uint64_t a, const MappedFile& m) { return a < m.start; });
  if (f == files_.begin()) return 0;
  --f;
  if (addr >= f->end) return 0;
  const OpenedFile* opened = mapped_file(f->path);
  if (opened->fd < 0) return 0;
  end = std::min(end, f->end);
  const uint64_t file_at = f->offset + (addr - f->start);
  if (file_at >= opened->size) return 0;
  const size_t n = static_cast<size_t>(
      std::min<uint64_t>({into.size(), end - addr, opened->size - file_at}));
  return read_exact_at(opened->fd, file_at, into.data(), n) ? n : 0;
}

size_t CoreFile::read_prefix(RemoteAddr addr, std::span<std::byte> into) const {
  size_t done = 0;
  while (done < into.size()) {
    const size_t n = read_piece(addr.value() + done, into.subspan(done));
    if (n == 0) break;
    done += n;
  }
  return done;
}

bool CoreFile::read(RemoteAddr addr, std::span<std::byte> into) const {
  if (addr.value() + into.size() < addr.value()) return false;
  return read_prefix(addr, into) == into.size();
}

void CoreFile::read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const {
  ok.assign(requests.size(), false);
  for (size_t i = 0; i < requests.size(); ++i) ok[i] = read(requests[i].addr, requests[i].into);
}

}  // namespace pyflame::core

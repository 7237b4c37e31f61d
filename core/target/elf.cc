// SPDX-License-Identifier: Apache-2.0
#include "core/target/elf.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <algorithm>
#include <functional>
#include <vector>
#include <limits>

#include "core/errors.h"
#include "core/log.h"
#include "core/target/elf_notes.h"
#include "core/target/regular_file.h"

namespace pyflame::core {

// One symbol table as it is in the file (entries and their strings): looked
// up by a scan, so that a table costs its size and nothing per symbol.
struct SymbolTable {
  std::string entries;
  std::string strings;
  // (hash of the name, index in the table) of each symbol lookup() accepts,
  // sorted: built at the first lookup. An interpreter's tables hold tens of
  // thousands of symbols and finding its interpreter looks up dozens, for
  // every process of a --subprocesses tree. One flat vector (12 bytes a
  // symbol), not a node per name: a hostile file's tables cost us little.
  std::vector<std::pair<uint64_t, uint32_t>> by_hash;
  bool indexed = false;
};

struct ElfFile::Impl {
  int fd = -1;
  uint64_t file_size = 0;
  SymbolTable symtab, dynsym;  // .symtab wins (same values, more of them)
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(ExitCode::kFailure, "pyflame: cannot read ELF file " + path + ": " + why);
}

bool within(uint64_t offset, uint64_t size, uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// The name of an accepted symbol (a defined object, function or TLS with
// a value and a terminated name), else nullopt.
std::optional<std::string_view> accepted_name(const SymbolTable& t, size_t i, uint64_t& value) {
  Elf64_Sym sym;
  std::memcpy(&sym, t.entries.data() + i * sizeof sym, sizeof sym);
  if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) return std::nullopt;
  int type = ELF64_ST_TYPE(sym.st_info);
  if (type != STT_OBJECT && type != STT_FUNC && type != STT_NOTYPE && type != STT_TLS) return std::nullopt;
  if (sym.st_name >= t.strings.size()) return std::nullopt;
  const char* s = t.strings.data() + sym.st_name;
  const void* nul = std::memchr(s, '\0', t.strings.size() - sym.st_name);
  if (nul == nullptr || nul == s) return std::nullopt;  // unterminated, or no name
  value = sym.st_value;
  return std::string_view(s, static_cast<size_t>(static_cast<const char*>(nul) - s));
}

void index_symbols(SymbolTable& t) {
  t.indexed = true;
  const size_t count = std::min<size_t>(t.entries.size() / sizeof(Elf64_Sym), UINT32_MAX);
  for (size_t i = 0; i < count; ++i) {
    uint64_t value = 0;
    if (auto name = accepted_name(t, i, value))
      t.by_hash.emplace_back(std::hash<std::string_view>()(*name), static_cast<uint32_t>(i));
  }
  // By hash, then by index: the first symbol of a name in the table wins,
  // as a scan in table order would find it. Over plain pointers: the
  // sanitized build's checked iterators made this sort take 0.75 s for one
  // libpython, during which a process tree's loop looked at nothing.
  std::sort(t.by_hash.data(), t.by_hash.data() + t.by_hash.size());
}

std::optional<uint64_t> lookup(SymbolTable& t, std::string_view name) {
  if (!t.indexed) index_symbols(t);
  const uint64_t h = std::hash<std::string_view>()(name);
  // The first entry of hash h, searched by hand: the sanitized build's
  // std::lower_bound first checks that the whole range is sorted, which
  // made each lookup a pass over every symbol (a look at a new process
  // took most of a second there).
  const std::pair<uint64_t, uint32_t>* entries = t.by_hash.data();
  size_t lo = 0, hi = t.by_hash.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (entries[mid].first < h)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < t.by_hash.size() && entries[i].first == h; ++i) {
    uint64_t value = 0;
    if (accepted_name(t, entries[i].second, value) == name) return value;
  }
  return std::nullopt;
}

}  // namespace

ElfFile::ElfFile(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  impl_->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (impl_->fd < 0) fail(path, std::strerror(errno));
  index();
}

ElfFile::ElfFile(int fd, const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  impl_->fd = fd;
  index();
}

void ElfFile::index() {
  const std::string& path = path_;
  const int fd = impl_->fd;
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  impl_->file_size = file_size;

  Elf64_Ehdr ehdr;
  if (!read_exact_at(fd, 0, &ehdr, sizeof ehdr) || std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0)
    fail(path, "not an ELF file");
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_ident[EI_DATA] != ELFDATA2LSB ||
      ehdr.e_machine != EM_X86_64)
    fail(path, "not an x86-64 ELF file");
  is_dyn_ = ehdr.e_type == ET_DYN;

  // Section 0 holds the counts that do not fit the ELF header.
  Elf64_Shdr shdr0{};
  const bool has_sections = ehdr.e_shoff != 0;
  if (has_sections) {
    if (ehdr.e_shentsize != sizeof(Elf64_Shdr)) fail(path, "bad section header size");
    if (!within(ehdr.e_shoff, sizeof shdr0, file_size) || !read_exact_at(fd, ehdr.e_shoff, &shdr0, sizeof shdr0))
      fail(path, "section headers outside the file");
  }

  uint64_t phnum = ehdr.e_phnum == PN_XNUM ? shdr0.sh_info : ehdr.e_phnum;
  if (phnum > ElfLimits::kMaxProgramHeaders)
    fail(path, fmt::format("{} program headers, more than the {} pyflame reads", phnum,
                           ElfLimits::kMaxProgramHeaders));
  if (phnum > 0 && ehdr.e_phentsize != sizeof(Elf64_Phdr)) fail(path, "bad program header size");
  std::vector<Elf64_Phdr> phdrs(phnum);
  if (!within(ehdr.e_phoff, phnum * sizeof(Elf64_Phdr), file_size) ||
      !read_exact_at(fd, ehdr.e_phoff, phdrs.data(), phnum * sizeof(Elf64_Phdr)))
    fail(path, "program headers outside the file");
  uint64_t lowest_offset = std::numeric_limits<uint64_t>::max();
  for (const Elf64_Phdr& p : phdrs) {
    if (p.p_type == PT_LOAD && p.p_offset < lowest_offset) {
      lowest_offset = p.p_offset;
      first_load_vaddr_ = p.p_vaddr;
      first_load_offset_ = p.p_offset;
    }
  }
  if (lowest_offset == std::numeric_limits<uint64_t>::max()) fail(path, "no loadable segment");
  // The build-id: a core file's reader checks a mapped file against it.
  constexpr uint64_t kMaxNoteSegment = 64 << 10;
  for (const Elf64_Phdr& p : phdrs) {
    if (p.p_type != PT_NOTE || build_id_ || p.p_filesz > kMaxNoteSegment ||
        !within(p.p_offset, p.p_filesz, file_size))
      continue;
    std::string notes(p.p_filesz, '\0');
    if (!read_exact_at(fd, p.p_offset, notes.data(), notes.size())) continue;
    for_each_note(notes, [&](const ElfNote& n) {
      if (build_id_ || n.type != NT_GNU_BUILD_ID || n.name != "GNU" || n.desc.empty()) return;
      build_id_ = ElfBuildId{std::string(n.desc), p.p_vaddr + n.desc_offset};
    });
  }
  if (!has_sections) return;

  const uint64_t shnum = ehdr.e_shnum == 0 ? shdr0.sh_size : ehdr.e_shnum;
  if (shnum > ElfLimits::kMaxSections)
    fail(path, fmt::format("{} sections, more than the {} pyflame reads", shnum, ElfLimits::kMaxSections));
  std::vector<Elf64_Shdr> shdrs(shnum);
  if (!within(ehdr.e_shoff, shnum * sizeof(Elf64_Shdr), file_size) ||
      !read_exact_at(fd, ehdr.e_shoff, shdrs.data(), shnum * sizeof(Elf64_Shdr)))
    fail(path, "section headers outside the file");

  // Section names: only the allocated sections' are kept, from at most
  // kMaxSectionNames bytes of .shstrtab (a name beyond them is empty).
  const uint64_t shstrndx = ehdr.e_shstrndx == SHN_XINDEX ? shdr0.sh_link : ehdr.e_shstrndx;
  std::string names;
  if (shstrndx < shnum && shdrs[shstrndx].sh_type != SHT_NOBITS &&
      within(shdrs[shstrndx].sh_offset, shdrs[shstrndx].sh_size, file_size)) {
    names.resize(std::min<uint64_t>(shdrs[shstrndx].sh_size, ElfLimits::kMaxSectionNames));
    if (!read_exact_at(fd, shdrs[shstrndx].sh_offset, names.data(), names.size())) names.clear();
  }
  auto name_of = [&](uint32_t at) -> std::string {
    if (at >= names.size()) return {};
    return std::string(names.data() + at, strnlen(names.data() + at, names.size() - at));
  };

  // The first .symtab and the first .dynsym, and their strings; bounded.
  auto load_table = [&](const Elf64_Shdr& s, SymbolTable& into, const char* what) -> bool {
    if (s.sh_entsize != sizeof(Elf64_Sym) || s.sh_link >= shnum) return false;
    const Elf64_Shdr& strs = shdrs[s.sh_link];
    if (s.sh_size > ElfLimits::kMaxSymbolTable || strs.sh_size > ElfLimits::kMaxStringTable) {
      PYFLAME_DEBUG_LOG("{}: {} of {} with {} of strings is larger than pyflame reads", path, what,
                        mib(s.sh_size), mib(strs.sh_size));
      return false;
    }
    if (!within(s.sh_offset, s.sh_size, file_size) || !within(strs.sh_offset, strs.sh_size, file_size))
      return false;
    into.entries.resize(s.sh_size - s.sh_size % sizeof(Elf64_Sym));
    into.strings.resize(strs.sh_size);
    if (!read_exact_at(fd, s.sh_offset, into.entries.data(), into.entries.size()) ||
        !read_exact_at(fd, strs.sh_offset, into.strings.data(), into.strings.size())) {
      into = {};
      return false;
    }
    return true;
  };
  const Elf64_Shdr* symtab = nullptr;
  const Elf64_Shdr* dynsym = nullptr;
  for (uint64_t i = 1; i < shnum; ++i) {
    const Elf64_Shdr& s = shdrs[i];
    if (s.sh_type == SHT_SYMTAB && symtab == nullptr) symtab = &s;
    if (s.sh_type == SHT_DYNSYM && dynsym == nullptr) dynsym = &s;
    if (s.sh_type == SHT_DYNAMIC && dynamic_.size == 0 && s.sh_link < shnum) {
      const Elf64_Shdr& strs = shdrs[s.sh_link];
      dynamic_ = {".dynamic", s.sh_addr, s.sh_size, s.sh_offset, false, false};
      dynamic_strings_ = {"", strs.sh_addr, strs.sh_size, strs.sh_offset, false, strs.sh_type == SHT_NOBITS};
    }
    if (s.sh_flags & SHF_ALLOC)
      sections_.push_back({name_of(s.sh_name), s.sh_addr, s.sh_size, s.sh_offset,
                           (s.sh_flags & SHF_WRITE) != 0, s.sh_type == SHT_NOBITS});
  }
  if (symtab != nullptr) has_symtab_ = load_table(*symtab, impl_->symtab, ".symtab");
  if (dynsym != nullptr && !load_table(*dynsym, impl_->dynsym, ".dynsym") &&
      dynsym->sh_size > ElfLimits::kMaxSymbolTable && !has_symtab_)
    fail(path, fmt::format(".dynsym of {} is larger than the {} pyflame reads", mib(dynsym->sh_size),
                           mib(ElfLimits::kMaxSymbolTable)));
}

uint64_t ElfFile::file_size() const { return impl_->file_size; }

ElfFile::~ElfFile() = default;
ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;

std::optional<uint64_t> ElfFile::symbol(std::string_view name) const {
  if (auto v = lookup(impl_->symtab, name)) return v;
  return lookup(impl_->dynsym, name);
}

std::optional<std::string> ElfFile::section_bytes(const ElfSection& section) const {
  if (section.nobits || section.size > ElfLimits::kMaxSectionBytes ||
      !within(section.offset, section.size, impl_->file_size))
    return std::nullopt;
  std::string bytes(section.size, '\0');
  if (!read_exact_at(impl_->fd, section.offset, bytes.data(), bytes.size())) return std::nullopt;
  return bytes;
}

ElfDynamic ElfFile::dynamic() const {
  ElfDynamic out;
  if (dynamic_.size == 0) return out;
  auto entries = section_bytes(dynamic_);
  auto strings = section_bytes(dynamic_strings_);
  if (!entries || !strings) return out;
  for (size_t at = 0; at + sizeof(Elf64_Dyn) <= entries->size(); at += sizeof(Elf64_Dyn)) {
    Elf64_Dyn dyn;
    std::memcpy(&dyn, entries->data() + at, sizeof dyn);
    if (dyn.d_tag == DT_NULL) break;
    if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH) continue;
    if (dyn.d_un.d_val >= strings->size()) continue;
    const char* text = strings->data() + dyn.d_un.d_val;
    std::string value(text, strnlen(text, strings->size() - dyn.d_un.d_val));
    if (dyn.d_tag == DT_NEEDED) {
      out.needed.push_back(std::move(value));
      continue;
    }
    for (size_t begin = 0;;) {
      const size_t colon = value.find(':', begin);
      out.run_path.push_back(value.substr(begin, colon == std::string::npos ? colon : colon - begin));
      if (colon == std::string::npos) break;
      begin = colon + 1;
    }
  }
  return out;
}

std::optional<uint64_t> ElfFile::load_bias(const std::vector<Mapping>& maps,
                                           std::string_view mapped_path) const {
  if (!is_dyn_) return 0;  // ET_EXEC runs at its link-time addresses
  constexpr uint64_t kPage = 4096;
  uint64_t want_offset = first_load_offset_ & ~(kPage - 1);
  for (const Mapping& m : maps) {
    if (strip_deleted(m.path) != mapped_path || m.offset != want_offset) continue;
    return m.start - (first_load_vaddr_ & ~(kPage - 1));
  }
  return std::nullopt;
}

}  // namespace pyflame::core

#include "core/elf.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "core/errors.h"

namespace pyflame::core {

struct ElfFile::Impl {
  int fd = -1;
  Elf* elf = nullptr;
  // Defined symbols by name; .symtab wins over .dynsym (same values).
  std::unordered_map<std::string, uint64_t> symbols;
  ~Impl() {
    if (elf != nullptr) elf_end(elf);
    if (fd >= 0) ::close(fd);
  }
};

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(ExitCode::kFailure, "pyflame: cannot read ELF file " + path + ": " + why);
}

void index_symbols(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr,
                   std::unordered_map<std::string, uint64_t>& out) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (data == nullptr || shdr.sh_entsize == 0) return;
  size_t count = shdr.sh_size / shdr.sh_entsize;
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) break;
    if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
    int type = GELF_ST_TYPE(sym.st_info);
    if (type != STT_OBJECT && type != STT_FUNC && type != STT_NOTYPE && type != STT_TLS) continue;
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name == nullptr || *name == '\0') continue;
    out.try_emplace(name, sym.st_value);
  }
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
  if (elf_version(EV_CURRENT) == EV_NONE) fail(path, elf_errmsg(-1));
  struct stat st;
  if (::fstat(impl_->fd, &st) != 0) fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  impl_->elf = elf_begin(impl_->fd, ELF_C_READ_MMAP, nullptr);
  if (impl_->elf == nullptr || elf_kind(impl_->elf) != ELF_K_ELF) fail(path, "not an ELF file");
  GElf_Ehdr ehdr;
  if (gelf_getehdr(impl_->elf, &ehdr) == nullptr) fail(path, elf_errmsg(-1));
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_machine != EM_X86_64)
    fail(path, "not an x86-64 ELF file");
  is_dyn_ = ehdr.e_type == ET_DYN;

  size_t phnum = 0;
  if (elf_getphdrnum(impl_->elf, &phnum) != 0) fail(path, elf_errmsg(-1));
  uint64_t lowest_offset = std::numeric_limits<uint64_t>::max();
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(impl_->elf, static_cast<int>(i), &phdr) == nullptr) continue;
    if (phdr.p_type == PT_LOAD && phdr.p_offset < lowest_offset) {
      lowest_offset = phdr.p_offset;
      first_load_vaddr_ = phdr.p_vaddr;
      first_load_offset_ = phdr.p_offset;
    }
  }
  if (lowest_offset == std::numeric_limits<uint64_t>::max()) fail(path, "no loadable segment");

  size_t shstrndx = 0;
  if (elf_getshdrstrndx(impl_->elf, &shstrndx) != 0) fail(path, elf_errmsg(-1));
  // .symtab first so that its (complete) entries win.
  for (int pass = 0; pass < 2; ++pass) {
    for (Elf_Scn* scn = elf_nextscn(impl_->elf, nullptr); scn != nullptr;
         scn = elf_nextscn(impl_->elf, scn)) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) == nullptr) continue;
      if (pass == 0 && shdr.sh_type == SHT_SYMTAB) {
        has_symtab_ = true;
        index_symbols(impl_->elf, scn, shdr, impl_->symbols);
      } else if (pass == 1 && shdr.sh_type == SHT_DYNSYM) {
        index_symbols(impl_->elf, scn, shdr, impl_->symbols);
      } else if (pass == 1 && (shdr.sh_flags & SHF_ALLOC)) {
        const char* name = elf_strptr(impl_->elf, shstrndx, shdr.sh_name);
        sections_.push_back({name ? name : "", shdr.sh_addr, shdr.sh_size, shdr.sh_offset,
                             (shdr.sh_flags & SHF_WRITE) != 0, shdr.sh_type == SHT_NOBITS});
      }
    }
  }
}

ElfFile::~ElfFile() = default;
ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;

std::optional<uint64_t> ElfFile::symbol(std::string_view name) const {
  auto it = impl_->symbols.find(std::string(name));
  if (it == impl_->symbols.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> ElfFile::section_bytes(const ElfSection& section) const {
  if (section.nobits) return std::nullopt;
  size_t file_size = 0;
  const char* image = elf_rawfile(impl_->elf, &file_size);
  if (image == nullptr || section.offset > file_size || section.size > file_size - section.offset)
    return std::nullopt;
  return std::string(image + section.offset, section.size);
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

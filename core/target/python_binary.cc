// SPDX-License-Identifier: Apache-2.0
#include "core/target/python_binary.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cctype>
#include <cstring>
#include <regex>

#include "core/errors.h"

namespace pyflame::core {
namespace {

std::string_view basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool looks_like_pypy(const std::vector<Mapping>& maps) {
  for (const Mapping& m : maps)
    if (basename(m.path).find("libpypy") != std::string_view::npos) return true;
  return false;
}

// The version a Py_Version value (PY_VERSION_HEX, 3.11+) names; nullopt
// for one that is not 3.x.
std::optional<PythonVersionId> version_from_hex(uint32_t hex) {
  const int major = static_cast<int>((hex >> 24) & 0xff);
  const int minor = static_cast<int>((hex >> 16) & 0xff);
  if (major != 3) return std::nullopt;
  return PythonVersionId{major, minor, fmt::format("{}.{}.{}", major, minor, (hex >> 8) & 0xff),
                         "its Py_Version"};
}

// The major versions an interpreter's C API allows: PyString_* is 2.x only,
// PyUnicode_FromString 3.x only (2.x names it PyUnicodeUCS*_FromString).
std::vector<int> api_majors(const ElfFile& elf) {
  if (elf.symbol("PyString_FromString")) return {2};
  if (elf.symbol("PyUnicode_FromString")) return {3};
  return {3, 2};
}

// The highest PY_VERSION of one of `majors` in an interpreter's read-only
// data: other version-like strings hide there too (3.9's Unicode database
// says "3.2.0"), and they are older.
std::optional<PythonVersionId> version_from_rodata_scan(std::string_view rodata,
                                                        const std::vector<int>& majors) {
  for (int major : majors)
    for (int minor = 29; minor >= 0; --minor)
      if (auto full = version_from_rodata(rodata, major, minor))
        return PythonVersionId{major, minor, *full, "its version string"};
  return std::nullopt;
}

std::optional<std::string> rodata_of(const ElfFile& elf) {
  for (const ElfSection& s : elf.sections())
    if (s.name == ".rodata") return elf.section_bytes(s);
  return std::nullopt;
}

// The version from the file's contents (Py_Version, else PY_VERSION in
// .rodata), else from `names`.
std::optional<PythonVersionId> file_version_from_contents(const ElfFile& elf,
                                                          const std::vector<std::string>& names) {
  if (auto addr = elf.symbol("Py_Version")) {
    for (const ElfSection& s : elf.sections()) {
      if (s.nobits || *addr < s.addr || *addr + 4 > s.addr + s.size) continue;
      auto bytes = elf.section_bytes(s);
      if (!bytes || bytes->size() < *addr - s.addr + 4) break;
      uint32_t hex = 0;
      std::memcpy(&hex, bytes->data() + (*addr - s.addr), 4);  // x86-64: little-endian, as the file
      if (auto v = version_from_hex(hex)) return v;
      break;
    }
  }
  if (auto bytes = rodata_of(elf))
    if (auto v = version_from_rodata_scan(*bytes, api_majors(elf))) return v;
  for (const std::string& name : names)
    if (auto v = version_from_file_name(name)) return v;
  return std::nullopt;
}

}  // namespace

std::string PythonVersionId::build() const {
  return fmt::format("{}.{}{}", major, minor, free_threaded ? "t" : "");
}

std::string PythonVersionId::python() const {
  return fmt::format("{}Python {}", free_threaded ? "free-threaded " : "", full);
}

// Every CPython 2.7 - 3.15 exports these.
bool has_interpreter_symbols(const ElfFile& elf) {
  return elf.symbol("PyCode_Type").has_value() && elf.symbol("Py_Initialize").has_value();
}

// Py_DECREF of a free-threaded build (3.13+) calls these from every
// extension module, so its interpreter must export them; a default build
// has neither. A name, not a flag in memory: it needs no layout.
bool is_free_threaded(const ElfFile& elf) {
  return elf.symbol("_Py_MergeZeroLocalRefcount").has_value() &&
         elf.symbol("_Py_DecRefShared").has_value();
}


std::optional<PythonVersionId> interpreter_file_version(const ElfFile& elf,
                                                        const std::vector<std::string>& names) {
  std::optional<PythonVersionId> v = file_version_from_contents(elf, names);
  if (v) v->free_threaded = is_free_threaded(elf);
  return v;
}

std::optional<PythonVersionId> version_from_file_name(std::string_view name) {
  static const std::regex kPattern(R"(^(?:lib)?python([23])\.([0-9]{1,2})([a-z]*)(?:\.so.*|-.*)?$)");
  std::cmatch m;
  std::string n(name);
  if (!std::regex_match(n.c_str(), m, kPattern)) return std::nullopt;
  PythonVersionId v;
  v.major = std::stoi(m[1]);
  v.minor = std::stoi(m[2]);
  v.full = fmt::format("{}.{}", v.major, v.minor);
  v.how = fmt::format("file name {}", name);
  // ABI flags: m (pymalloc, <= 3.7), d (debug), t (free-threaded, 3.13+).
  v.free_threaded = std::string_view(m[3].first, m[3].second).find('t') != std::string_view::npos;
  return v;
}

std::optional<std::string> version_from_rodata(std::string_view rodata, int major, int minor) {
  // PY_VERSION is a NUL-terminated literal such as "3.11.7" or "3.9.2+". The
  // linker may merge it into the tail of a longer string that ends the same
  // way (a path such as ".../versions/3.9.18"), so a match preceded by NUL is
  // best, one preceded by '/', ' ' or '-' is accepted.
  std::string prefix = fmt::format("{}.{}.", major, minor);
  std::optional<std::string> tail_merged;
  size_t pos = 0;
  while ((pos = rodata.find(prefix, pos)) != std::string_view::npos) {
    char before = pos == 0 ? '\0' : rodata[pos - 1];
    size_t end = pos + prefix.size();
    size_t digits = end;
    while (digits < rodata.size() && std::isdigit(static_cast<unsigned char>(rodata[digits]))) ++digits;
    size_t tail = digits;
    while (tail < rodata.size() && tail - digits < 8 && rodata[tail] != '\0' &&
           (std::isalnum(static_cast<unsigned char>(rodata[tail])) || rodata[tail] == '+'))
      ++tail;
    if (digits > end && tail < rodata.size() && rodata[tail] == '\0') {
      std::string found(rodata.substr(pos, tail - pos));
      if (before == '\0') return found;
      if (!tail_merged && (before == '/' || before == ' ' || before == '-')) tail_merged = found;
    }
    pos = end;
  }
  return tail_merged;
}

std::shared_ptr<ElfFile> PythonBinaryCache::elf(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return std::make_shared<ElfFile>(fd, path);  // ElfFile says why
  const auto key = std::make_tuple(st.st_dev, st.st_ino, st.st_size,
                                   static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec);
  if (auto it = files_.find(key); it != files_.end()) {
    ::close(fd);
    return it->second;
  }
  if (files_.size() >= kMaxFiles) {
    files_.clear();
    sections_.clear();
  }
  auto elf = std::make_shared<ElfFile>(fd, path);
  files_.emplace(key, elf);
  return elf;
}

const std::optional<std::string>& PythonBinaryCache::section_bytes(const std::shared_ptr<ElfFile>& elf,
                                                                 const ElfSection& section) {
  auto [it, added] = sections_.try_emplace({elf.get(), section.offset});
  if (added) it->second = elf->section_bytes(section);
  return it->second;
}

PythonBinary PythonBinary::find(const TargetImage& image, PythonBinaryCache* cache) {
  auto open_elf = [cache](int fd, const std::string& path) {
    return cache ? cache->elf(fd, path) : std::make_shared<ElfFile>(fd, path);
  };
  PythonBinary b;
  b.maps_ = image.maps();
  const std::string who = image.describe();
  if (looks_like_pypy(b.maps_))
    throw Error(ExitCode::kNotPython,
                fmt::format("pyflame: {} is running PyPy, which pyflame does not support "
                            "(it reads CPython's memory layout)", who));

  // --enable-shared: the interpreter lives in a mapped libpython.
  for (const Mapping& m : b.maps_) {
    std::string_view path = strip_deleted(m.path);
    auto v = version_from_file_name(basename(path));
    if (!v || basename(path).substr(0, 3) != "lib") continue;
    b.target_path_ = std::string(path);
    b.version_ = *v;
    b.elf_ = open_elf(image.open_mapped_file(m), b.target_path_);
    break;
  }
  if (!b.elf_) {
    // A static build: the executable is the interpreter. A live process's
    // opens through /proc/PID/exe, the running file even if replaced on disk.
    b.target_path_ = image.exe_target_path();
    try {
      b.elf_ = open_elf(image.open_executable(), b.target_path_);
    } catch (const Error& e) {
      if (e.code() == ExitCode::kMissingFile) throw;  // a core's executable, not found
      throw Error(ExitCode::kNotPython,
                  fmt::format("pyflame: {} ({}) is not a Python process: its executable "
                              "is not a readable ELF file",
                              who, b.target_path_));
    }
    if (!has_interpreter_symbols(*b.elf_))
      throw Error(ExitCode::kNotPython,
                  fmt::format("pyflame: {} ({}) is not a Python process: neither its "
                              "executable nor a loaded libpython contains a CPython interpreter",
                              who, b.target_path_));
    if (auto v = version_from_file_name(basename(b.target_path_))) b.version_ = *v;
  }

  auto bias = b.elf_->load_bias(b.maps_, b.target_path_);
  if (!bias)
    throw Error(ExitCode::kNotPython,
                fmt::format("pyflame: cannot find where {} mapped {}", who, b.target_path_));
  b.bias_ = *bias;

  // Py_Version (3.11+) is the exact PY_VERSION_HEX; read it from the target.
  if (auto sym = b.symbol("Py_Version")) {
    if (auto hex = image.read_value<uint32_t>(*sym))
      if (auto v = version_from_hex(*hex)) b.version_ = *v;
  }
  // Otherwise the version string in the read-only data: it names the patch
  // level, and it is the only witness for a static build under any name.
  for (const ElfSection& s : b.elf_->sections()) {
    if (s.name != ".rodata") continue;
    // Bounded (ElfLimits::kMaxSectionBytes): a crafted file may claim any
    // size, and a sparse one may even have it.
    std::optional<std::string> own;
    const std::optional<std::string>& bytes =
        cache ? cache->section_bytes(b.elf_, s) : (own = b.elf_->section_bytes(s));
    if (!bytes) {
      if (b.version_.major == 0)
        throw Error(ExitCode::kNotPython,
                    fmt::format("pyflame: {} ({}): cannot search its .rodata ({} bytes; "
                                "pyflame reads at most {}) for a Python version",
                                who, b.target_path_, s.size, ElfLimits::kMaxSectionBytes));
      break;
    }
    if (b.version_.major != 0) {
      if (auto full = version_from_rodata(*bytes, b.version_.major, b.version_.minor);
          full && b.version_.full.size() <= 4)
        b.version_.full = *full;
    } else if (auto v = version_from_rodata_scan(*bytes, api_majors(*b.elf_))) {
      b.version_ = *v;
    }
    break;
  }
  if (b.version_.major == 0)
    throw Error(ExitCode::kNotPython,
                fmt::format("pyflame: {} ({}) has a Python interpreter, but its version "
                            "could not be determined",
                            who, b.target_path_));
  b.version_.free_threaded = is_free_threaded(*b.elf_);
  return b;
}

std::optional<RemoteAddr> PythonBinary::symbol(std::string_view name) const {
  auto value = elf_->symbol(name);
  if (!value) return std::nullopt;
  return RemoteAddr(*value + bias_);
}

std::vector<std::pair<RemoteAddr, uint64_t>> PythonBinary::writable_ranges() const {
  std::vector<std::pair<RemoteAddr, uint64_t>> ranges;
  for (const ElfSection& s : elf_->sections())
    if (s.writable && s.size > 0) ranges.emplace_back(RemoteAddr(s.addr + bias_), s.size);
  return ranges;
}

}  // namespace pyflame::core

// SPDX-License-Identifier: Apache-2.0
#include "versions/walker/remote_object.h"

#include "core/output/utf8.h"

#include <algorithm>
#include <vector>

namespace pyflame::versions {

using core::RemoteAddr;

namespace {

uint32_t bitfield(std::span<const std::byte> buf, const pyflame_bitfield& f) {
  return (load<uint32_t>(buf, f.byte_offset) & f.mask) >> f.shift;
}

}  // namespace

std::optional<std::string> pep393_to_utf8(int kind, std::span<const std::byte> data) {
  if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;
  if (data.size() % static_cast<size_t>(kind) != 0) return std::nullopt;
  std::string out;
  out.reserve(data.size());
  for (size_t i = 0; i < data.size(); i += static_cast<size_t>(kind)) {
    uint32_t cp = 0;
    if (kind == 1) cp = static_cast<uint8_t>(data[i]);
    if (kind == 2) cp = load<uint16_t>(data, static_cast<int64_t>(i));
    if (kind == 4) cp = load<uint32_t>(data, static_cast<int64_t>(i));
    // Lone surrogates can live in a str (surrogateescape file names); show
    // them as U+FFFD rather than emit invalid UTF-8.
    if (cp > 0x10ffff) return std::nullopt;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    core::append_utf8(out, cp);
  }
  return out;
}

std::optional<RemoteAddr> RemoteObjects::read_pointer(RemoteAddr addr) const {
  auto v = target_.read_value<uint64_t>(addr);
  if (!v) return std::nullopt;
  return RemoteAddr(*v);
}

std::optional<int64_t> RemoteObjects::bytes_length(RemoteAddr object) const {
  if (!object) return std::nullopt;
  std::vector<std::byte> head(static_cast<size_t>(offset_of(l_.bytes_sval)));
  if (!target_.read(object, head) || RemoteAddr(read(head, l_.ob_type)) != types_.bytes)
    return std::nullopt;
  const int64_t size = read(head, l_.ob_size);
  if (size < 0) return std::nullopt;
  return size;
}

std::optional<std::string> RemoteObjects::read_bytes(RemoteAddr object, int64_t max_bytes) const {
  auto length = bytes_length(object);
  if (!length || *length > max_bytes || *length > kMaxTableBytes) return std::nullopt;
  const int64_t size = *length;
  std::string data(static_cast<size_t>(size), '\0');
  if (!target_.read(address_of(object, l_.bytes_sval), std::as_writable_bytes(std::span(data))))
    return std::nullopt;
  return data;
}

std::optional<RemoteObjects::BytesPrefix> RemoteObjects::read_bytes_prefix(RemoteAddr object,
                                                                           int64_t max) const {
  auto length = bytes_length(object);
  if (!length) return std::nullopt;
  BytesPrefix out;
  out.length = *length;
  out.data.resize(static_cast<size_t>(std::min(*length, std::max<int64_t>(max, 0))));
  if (!out.data.empty() &&
      !target_.read(address_of(object, l_.bytes_sval), std::as_writable_bytes(std::span(out.data))))
    return std::nullopt;
  return out;
}

std::optional<RemoteObjects::TextPrefix> RemoteObjects::read_text_prefix(RemoteAddr object,
                                                                         int64_t max) const {
  if (!object || l_.string_model != PYFLAME_STRINGS_PEP393) return std::nullopt;
  std::vector<std::byte> buf(static_cast<size_t>(l_.sizeof_compact_unicode));
  if (!target_.read(object, buf) || RemoteAddr(read(buf, l_.ob_type)) != types_.text)
    return std::nullopt;
  const int64_t length = read(buf, l_.unicode_length);
  if (length < 0 || bitfield(buf, l_.unicode_compact) == 0) return std::nullopt;
  const bool ascii = bitfield(buf, l_.unicode_ascii) != 0;
  const int kind = ascii ? 1 : static_cast<int>(bitfield(buf, l_.unicode_kind));
  if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;
  const int64_t data_offset = ascii ? l_.sizeof_ascii_object : l_.sizeof_compact_unicode;
  const int64_t shown = std::min(length, std::max<int64_t>(max, 0));
  std::vector<std::byte> data(static_cast<size_t>(shown * kind));
  if (!data.empty() && !target_.read(object + data_offset, data)) return std::nullopt;
  TextPrefix out;
  out.length = length;
  for (size_t i = 0; i < data.size(); i += static_cast<size_t>(kind)) {
    const auto at = static_cast<int64_t>(i);
    out.code_points.push_back(kind == 1   ? static_cast<uint8_t>(data[i])
                              : kind == 2 ? load<uint16_t>(data, at)
                                          : load<uint32_t>(data, at));
  }
  return out;
}

std::optional<std::string> RemoteObjects::read_text(RemoteAddr object) const {
  if (!object) return std::nullopt;
  if (l_.string_model == PYFLAME_STRINGS_BYTES) {
    return read_bytes(object, kMaxStringChars);
  }
  // Read the header and the first characters in one go; most names fit.
  constexpr size_t kInline = 256;
  std::vector<std::byte> buf(static_cast<size_t>(l_.sizeof_compact_unicode) + kInline);
  if (!target_.read(object, buf)) {
    buf.resize(static_cast<size_t>(l_.sizeof_compact_unicode));
    if (!target_.read(object, buf)) return std::nullopt;
  }
  if (RemoteAddr(read(buf, l_.ob_type)) != types_.text) return std::nullopt;
  const int64_t length = read(buf, l_.unicode_length);
  if (length < 0 || length > kMaxStringChars) return std::nullopt;
  // Names and file names are compact (allocated with their data); a legacy
  // string would need another pointer chase, and is not worth trusting.
  if (bitfield(buf, l_.unicode_compact) == 0) return std::nullopt;
  bool ascii = bitfield(buf, l_.unicode_ascii) != 0;
  int kind = ascii ? 1 : static_cast<int>(bitfield(buf, l_.unicode_kind));
  if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;
  int64_t data_offset = ascii ? l_.sizeof_ascii_object : l_.sizeof_compact_unicode;
  size_t bytes = static_cast<size_t>(length) * static_cast<size_t>(kind);
  std::vector<std::byte> data(bytes);
  if (static_cast<size_t>(data_offset) + bytes <= buf.size()) {
    if (bytes > 0) std::memcpy(data.data(), buf.data() + data_offset, bytes);  // "" has no data()
  } else if (!target_.read(object + data_offset, data)) {
    return std::nullopt;
  }
  return pep393_to_utf8(kind, data);
}

}  // namespace pyflame::versions

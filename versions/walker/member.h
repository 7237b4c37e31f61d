// SPDX-License-Identifier: Apache-2.0
// Reading a measured struct member out of bytes copied from the target.
//
// Each kind of member (versions/layout.h) has its own C type, and only the
// reads its kind allows exist: a WORD is read as 8 bytes, an INTEGER at the
// width and signedness the compiler measured, a PLACE only gives its
// offset. A member this version lacks has no offset: asking for one throws,
// so an absent member can never read as 0.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#include "core/target/remote.h"
#include "versions/layout.h"

namespace pyflame::versions {

using WordMember = pyflame_member_word;
using IntegerMember = pyflame_member_integer;
using PlaceMember = pyflame_member_place;

template <typename M>
bool present(const M& member) {
  return member.offset != PYFLAME_ABSENT;
}

// Reading a member that is absent, or outside the bytes read, is a bug of
// ours (the buffers are sized from the layout), never the target's doing.
[[noreturn, gnu::cold, gnu::noinline]] inline void member_misread(const char* name,
                                                                   const char* what) {
  throw std::logic_error(std::string("layout member ") + name + ": " + what);
}

template <typename M>
int64_t offset_of(const M& member) {
  if (!present(member)) [[unlikely]]
    member_misread(member.name, "absent in this version");
  return member.offset;
}

template <typename M>
core::RemoteAddr address_of(core::RemoteAddr object, const M& member) {
  return object + offset_of(member);
}

inline constexpr size_t width(const WordMember&) { return sizeof(uint64_t); }
inline size_t width(const IntegerMember& member) { return static_cast<size_t>(member.size); }

// Where the member ends: the bytes to read so that it is included.
template <typename M>
int64_t end_of(const M& member) {
  return offset_of(member) + static_cast<int64_t>(width(member));
}

// The member's bytes as they are in the target, zero-extended: what a
// witness compares. One compare checks both presence and range: an absent
// member's offset, -1, is past any buffer once unsigned. Each width is its
// own fixed-size copy, a single load.
template <typename M>
[[gnu::always_inline]] inline uint64_t raw_bits(std::span<const std::byte> buf, const M& member) {
  const size_t size = width(member);
  const auto offset = static_cast<uint64_t>(member.offset);
  if (offset + size > buf.size() || offset > buf.size()) [[unlikely]]
    member_misread(member.name, present(member) ? "outside the bytes read" : "absent in this version");
  const std::byte* at = buf.data() + offset;
  switch (size) {
    case 1: return static_cast<uint64_t>(*reinterpret_cast<const uint8_t*>(at));
    case 2: { uint16_t v; std::memcpy(&v, at, 2); return v; }
    case 4: { uint32_t v; std::memcpy(&v, at, 4); return v; }
    default: { uint64_t v; std::memcpy(&v, at, 8); return v; }  // little-endian
  }
}

[[gnu::always_inline]] inline uint64_t read(std::span<const std::byte> buf, const WordMember& member) {
  return raw_bits(buf, member);
}

// The integer widened to 64 bits, sign-extended where it is signed.
[[gnu::always_inline]] inline int64_t as_integer(uint64_t bits, const IntegerMember& member) {
  const unsigned unused = 64 - 8 * static_cast<unsigned>(member.size);
  if (unused == 0) return static_cast<int64_t>(bits);
  return member.is_signed ? static_cast<int64_t>(bits << unused) >> unused
                          : static_cast<int64_t>(bits);
}

[[gnu::always_inline]] inline int64_t read(std::span<const std::byte> buf, const IntegerMember& member) {
  return as_integer(raw_bits(buf, member), member);
}

}  // namespace pyflame::versions

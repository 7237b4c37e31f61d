// SPDX-License-Identifier: Apache-2.0
#include "versions/walker/layout_locals.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "versions/walker/member.h"
#include "versions/walker/python_repr.h"

namespace pyflame::versions {

using core::FrameLocals;
using core::LocalKind;
using core::RemoteAddr;

namespace {

constexpr const char* kUnreadable = "<unreadable>";

// Where a member ends, for the members this version has (a place: where it starts).
int64_t end_if_present(const IntegerMember& m) { return present(m) ? end_of(m) : 0; }
int64_t end_if_present(const WordMember& m) { return present(m) ? end_of(m) : 0; }
int64_t end_if_present(const PlaceMember& m) { return present(m) ? m.offset : 0; }

// Whether `buf` holds the member (present, and read whole).
template <typename M>
bool has(std::span<const std::byte> buf, const M& m) {
  return present(m) && end_of(m) <= static_cast<int64_t>(buf.size());
}

}  // namespace

std::optional<std::string> LocalsReader::type_name(RemoteAddr type) {
  if (auto it = type_names_.find(type); it != type_names_.end()) return it->second;
  std::optional<std::string> name;
  if (type) {
    if (auto text = objects_.read_pointer(address_of(type, l_.type_name)); text && *text) {
      char buf[kMaxTypeName + 1];
      const size_t got = target_.read_prefix(*text, std::as_writable_bytes(std::span(buf)));
      const size_t length = strnlen(buf, got);
      // A C string of printable ASCII, ended within the bound.
      if (length > 0 && length < got &&
          std::all_of(buf, buf + length, [](char c) { return c >= 0x20 && c < 0x7f; }))
        name = std::string(buf, length);
    }
  }
  if (type_names_.size() < 4096) type_names_.emplace(type, name);
  return name;
}

std::string LocalsReader::repr_int(RemoteAddr object, std::span<const std::byte> head) {
  if (!has(head, l_.long_tag)) return kUnreadable;
  int64_t count = 0;
  bool negative = false;
  if (l_.long_non_size_bits != PYFLAME_ABSENT) {
    // 3.12+: lv_tag holds the digit count above its sign bits.
    const auto tag = static_cast<uint64_t>(read(head, l_.long_tag));
    const auto sign = static_cast<int64_t>(tag & static_cast<uint64_t>(l_.long_sign_mask));
    if (sign == l_.long_sign_zero) return "0";
    if (sign != l_.long_sign_negative && sign != 0) return kUnreadable;
    negative = sign == l_.long_sign_negative;
    count = static_cast<int64_t>(tag >> l_.long_non_size_bits);
  } else {
    // Up to 3.11: ob_size, negative for a negative number.
    const int64_t size = read(head, l_.long_tag);
    negative = size < 0;
    count = size < 0 ? -size : size;
  }
  if (count < 0) return kUnreadable;
  if (count > kMaxIntDigits) return fmt::format("<int at {:#x}>", object.value());
  const auto digit_size = static_cast<size_t>(l_.sizeof_digit);
  if (digit_size != 2 && digit_size != 4) return kUnreadable;
  std::vector<std::byte> raw(static_cast<size_t>(count) * digit_size);
  if (!raw.empty() && !target_.read(address_of(object, l_.long_digits), raw)) return kUnreadable;
  std::vector<uint32_t> digits(static_cast<size_t>(count));
  for (size_t i = 0; i < digits.size(); ++i)
    digits[i] = digit_size == 4 ? load<uint32_t>(raw, static_cast<int64_t>(i * 4))
                                : load<uint16_t>(raw, static_cast<int64_t>(i * 2));
  return python_repr::integer(digits, static_cast<int>(l_.long_shift), negative);
}

LocalsReader::Shown LocalsReader::describe(RemoteAddr object) {
  if (!object) return {std::nullopt, kUnreadable};
  const int64_t head_size =
      std::max({end_of(l_.ob_type), end_of(l_.ob_size), end_if_present(l_.dict_used),
                end_if_present(l_.set_used), end_if_present(l_.float_value) + 8,
                end_if_present(l_.int_value), end_if_present(l_.long_tag),
                end_if_present(l_.long_digits)});
  std::vector<std::byte> buf(static_cast<size_t>(head_size));
  const size_t got = target_.read_prefix(object, buf);
  if (static_cast<int64_t>(got) < end_of(l_.ob_type)) return {std::nullopt, kUnreadable};
  const std::span<const std::byte> head(buf.data(), got);
  const RemoteAddr type(read(head, l_.ob_type));
  std::optional<std::string> name = type_name(type);
  if (!name) return {std::nullopt, kUnreadable};
  Shown shown{name, kUnreadable};
  auto length_of = [&](const IntegerMember& m, const char* what) {
    if (!has(head, m)) return;
    const int64_t n = read(head, m);
    if (n >= 0) shown.repr = fmt::format("<{} len={}>", what, n);
  };
  const ValueSymbols& v = values_;
  if (object == v.none && v.none) {
    shown.repr = "None";
  } else if (object == v.true_ && v.true_) {
    shown.repr = "True";
  } else if (object == v.false_ && v.false_) {
    shown.repr = "False";
  } else if (type == v.int_type && v.int_type) {
    if (has(head, l_.int_value)) shown.repr = fmt::format("{}", read(head, l_.int_value));
  } else if (type == v.long_type && v.long_type) {
    shown.repr = repr_int(object, head);
  } else if (type == v.float_type && v.float_type) {
    if (present(l_.float_value) && l_.float_value.offset + 8 <= static_cast<int64_t>(got))
      shown.repr = python_repr::floating(load<double>(head, l_.float_value.offset));
  } else if (type == objects_.types().text && l_.string_model == PYFLAME_STRINGS_PEP393) {
    if (auto text = objects_.read_text_prefix(object, python_repr::kMaxChars))
      shown.repr = python_repr::text(text->code_points, text->length);
  } else if (type == objects_.types().bytes) {
    // 3.x bytes, or a 2.7 str (the same type as its text).
    if (auto data = objects_.read_bytes_prefix(object, python_repr::kMaxChars))
      shown.repr = python_repr::bytes(data->data, data->length,
                                      l_.string_model == PYFLAME_STRINGS_PEP393);
  } else if (type == v.list_type && v.list_type) {
    length_of(l_.ob_size, "list");
  } else if (type == v.tuple_type && v.tuple_type) {
    length_of(l_.ob_size, "tuple");
  } else if (type == v.dict_type && v.dict_type) {
    length_of(l_.dict_used, "dict");
  } else if (type == v.set_type && v.set_type) {
    length_of(l_.set_used, "set");
  } else if (type == v.frozenset_type && v.frozenset_type) {
    length_of(l_.set_used, "frozenset");
  } else {
    shown.repr = fmt::format("<{} at {:#x}>", *name, object.value());
  }
  if (shown.repr == kUnreadable) shown.type = std::nullopt;
  return shown;
}

std::optional<std::vector<RemoteAddr>> LocalsReader::tuple_items(RemoteAddr tuple, int64_t max,
                                                                 int64_t* length) {
  if (!tuple || !values_.tuple_type) return std::nullopt;
  std::vector<std::byte> head(static_cast<size_t>(std::max(end_of(l_.ob_type), end_of(l_.ob_size))));
  if (!target_.read(tuple, head) || RemoteAddr(read(head, l_.ob_type)) != values_.tuple_type)
    return std::nullopt;
  const int64_t size = read(head, l_.ob_size);
  if (size < 0) return std::nullopt;
  *length = size;
  std::vector<uint64_t> words(static_cast<size_t>(std::min(size, max)));
  if (!words.empty() &&
      !target_.read(address_of(tuple, l_.tuple_items), std::as_writable_bytes(std::span(words))))
    return std::nullopt;
  return std::vector<RemoteAddr>(words.begin(), words.end());
}

std::optional<LocalsReader::Names> LocalsReader::read_names(RemoteAddr code) {
  const int64_t size = std::max(
      {end_of(l_.ob_type), end_of(l_.code_argcount), end_of(l_.code_flags),
       end_if_present(l_.code_kwonlyargcount), end_if_present(l_.code_nlocals),
       end_if_present(l_.code_varnames), end_if_present(l_.code_cellvars),
       end_if_present(l_.code_freevars), end_if_present(l_.code_localsplusnames),
       end_if_present(l_.code_localspluskinds)});
  std::vector<std::byte> buf(static_cast<size_t>(size));
  if (!code || !target_.read(code, buf) || RemoteAddr(read(buf, l_.ob_type)) != objects_.types().code)
    return std::nullopt;
  const int64_t flags = read(buf, l_.code_flags);
  int64_t args = read(buf, l_.code_argcount);
  if (present(l_.code_kwonlyargcount)) args += read(buf, l_.code_kwonlyargcount);
  if (flags & l_.co_varargs) ++args;
  if (flags & l_.co_varkeywords) ++args;

  Names out;
  // Appends the names of a tuple with `kind` (or, for nullopt, args then
  // locals); false if they cannot be read.
  auto add_tuple = [&](RemoteAddr tuple, std::optional<LocalKind> kind) {
    int64_t length = 0;
    const int64_t room = kMaxLocals - static_cast<int64_t>(out.names.size());
    auto items = tuple_items(tuple, room, &length);
    if (!items) return false;
    if (length > room) out.truncated = true;
    for (RemoteAddr item : *items) {
      auto name = objects_.read_text(item);
      if (!name) return false;
      const auto index = static_cast<int64_t>(out.names.size());
      out.names.push_back(std::move(*name));
      out.kinds.push_back(kind ? *kind : index < args ? LocalKind::kArg : LocalKind::kLocal);
      out.hidden.push_back(false);
    }
    return true;
  };

  if (present(l_.code_localsplusnames)) {
    // 3.11+: one table of names, and a kind byte each (CO_FAST_*).
    if (!add_tuple(RemoteAddr(read(buf, l_.code_localsplusnames)), std::nullopt)) return std::nullopt;
    auto kinds = objects_.read_bytes_prefix(RemoteAddr(read(buf, l_.code_localspluskinds)), kMaxLocals);
    if (!kinds || kinds->data.size() != out.names.size()) return std::nullopt;
    for (size_t i = 0; i < out.names.size(); ++i) {
      const auto k = static_cast<uint8_t>(kinds->data[i]);
      if (k & l_.fast_free) out.kinds[i] = LocalKind::kFree;
      else if (k & l_.fast_cell) out.kinds[i] = LocalKind::kCell;
      out.hidden[i] = l_.fast_hidden != PYFLAME_ABSENT && (k & l_.fast_hidden) != 0;
    }
    return out;
  }
  // Up to 3.10: co_varnames (co_nlocals of them), then the cells, then the
  // free variables, the order of f_localsplus.
  if (!add_tuple(RemoteAddr(read(buf, l_.code_varnames)), std::nullopt)) return std::nullopt;
  const size_t locals = out.names.size();
  if (!out.truncated && static_cast<int64_t>(locals) != read(buf, l_.code_nlocals)) return std::nullopt;
  if (!out.truncated && !add_tuple(RemoteAddr(read(buf, l_.code_cellvars)), LocalKind::kCell))
    return std::nullopt;
  if (!out.truncated && !add_tuple(RemoteAddr(read(buf, l_.code_freevars)), LocalKind::kFree))
    return std::nullopt;
  // An argument a closure captures is also a cell of the same name: the
  // cell holds its value (3.x clears the argument's slot, 2.7 keeps a
  // stale copy), shown once, as 3.11+ does.
  for (size_t i = locals; i < out.names.size(); ++i) {
    if (out.kinds[i] != LocalKind::kCell) continue;
    for (size_t j = 0; j < locals; ++j)
      if (out.names[j] == out.names[i]) out.hidden[j] = true;
  }
  return out;
}

FrameLocals LocalsReader::read_frame(RemoteAddr frame, RemoteAddr code) {
  FrameLocals out;
  auto names = read_names(code);
  if (!names || !frame) {
    out.unreadable = true;
    return out;
  }
  out.truncated = names->truncated;
  const size_t n = names->names.size();
  // The frame again, with its slots: it must still run that code (the
  // target ran on since the walk), and be a live frame object (<= 3.10).
  const bool objects = l_.frame_model == PYFLAME_FRAME_OBJECTS;
  const int64_t slots_at = objects ? offset_of(l_.frame_localsplus) : offset_of(l_.iframe_localsplus);
  std::vector<std::byte> buf(static_cast<size_t>(slots_at) + n * sizeof(uint64_t));
  if (!target_.read(frame, buf)) {
    out.unreadable = true;
    return out;
  }
  const uint64_t tag_mask = static_cast<uint64_t>(l_.stackref_tag_mask);
  const RemoteAddr running(objects ? read(buf, l_.frame_code) : read(buf, l_.iframe_code) & ~tag_mask);
  if (running != code ||
      (objects && (RemoteAddr(read(buf, l_.ob_type)) != objects_.types().frame || read(buf, l_.ob_refcnt) <= 0))) {
    out.unreadable = true;
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    if (names->hidden[i]) continue;
    const uint64_t bits = load<uint64_t>(buf, slots_at + static_cast<int64_t>(i * sizeof(uint64_t)));
    core::Local local;
    local.name = names->names[i];
    local.kind = names->kinds[i];
    // 3.14+: a tagged int is no object (the interpreter's own bookkeeping).
    if (l_.stackref_int_tag != PYFLAME_ABSENT &&
        (bits & static_cast<uint64_t>(l_.stackref_int_tag)) == static_cast<uint64_t>(l_.stackref_int_tag)) {
      local.repr = kUnreadable;
      out.values.push_back(std::move(local));
      continue;
    }
    RemoteAddr object(bits & ~tag_mask);
    if (!object) continue;  // unbound, as locals() leaves it out
    if (local.kind == LocalKind::kCell || local.kind == LocalKind::kFree) {
      // Its slot holds the cell; the cell holds the value (or nothing yet).
      auto type = objects_.read_pointer(address_of(object, l_.ob_type));
      auto ref = objects_.read_pointer(address_of(object, l_.cell_ref));
      if (!type || !ref || *type != values_.cell_type || !values_.cell_type) {
        local.repr = kUnreadable;
        out.values.push_back(std::move(local));
        continue;
      }
      if (!*ref) continue;  // an empty cell: unbound
      object = *ref;
    }
    Shown shown = describe(object);
    local.type = std::move(shown.type);
    local.repr = std::move(shown.repr);
    out.values.push_back(std::move(local));
  }
  return out;
}

}  // namespace pyflame::versions

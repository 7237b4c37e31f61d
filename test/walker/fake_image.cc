// SPDX-License-Identifier: Apache-2.0
#include "test/walker/fake_image.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>

namespace pyflame::test {
namespace {

// Where the type objects "are": the walker only compares ob_type with these
// addresses, never reads them, so they sit outside the image.
// (The types dump --locals names are in the image: it reads their tp_name.)
constexpr uint64_t kCodeType = 0x1000, kFrameType = 0x2000;
constexpr size_t kLocals = 16;  // bytes of locals after each interpreter frame, at least

// Where a member ends; a place (an array's start) ends where it starts.
template <typename M>
int64_t member_end(const M& member) {
  return versions::end_of(member);
}
int64_t member_end(const versions::PlaceMember& member) { return member.offset; }

// The bytes an object needs for those of its members this version has.
template <typename... M>
int64_t end_of(const M&... members) {
  int64_t end = 0;
  ((end = versions::present(members) ? std::max(end, member_end(members)) : end), ...);
  return end;
}

// The code's length in bytes: its line table's last entry and the frame's
// instruction, and a little more, inside it.
int code_bytes(const FakeFrame& frame) {
  const int last = std::max(frame.offset, frame.lines.empty() ? 0 : frame.lines.back().offset);
  return std::max(64, (last + 16 + 15) / 16 * 16);
}

}  // namespace

FakeImage::FakeImage(const pyflame_layout& layout, const std::vector<FakeThread>& threads,
                     std::optional<size_t> gil_holder)
    : l_(layout) {
  const pyflame_layout& l = l_;
  text_type_ = make_type("str");
  bytes_type_ = l.string_model == PYFLAME_STRINGS_BYTES ? text_type_ : make_type("bytes");
  tuple_type_ = make_type("tuple");
  list_type_ = make_type("list");
  long_type_ = make_type("int");
  none_type_ = make_type("NoneType");
  bool_type_ = make_type("bool");
  cell_type_ = make_type("cell");
  none_ = allocate("None", end_of(l.ob_type));
  set(none_, l.ob_type, none_type_);
  true_ = allocate("True", end_of(l.ob_type));
  set(true_, l.ob_type, bool_type_);
  symbols_.code_type = core::RemoteAddr(kCodeType);
  symbols_.frame_type = core::RemoteAddr(kFrameType);
  symbols_.text_type = core::RemoteAddr(text_type_);
  symbols_.bytes_type = core::RemoteAddr(bytes_type_);
  versions::ValueSymbols& v = symbols_.values;
  v.none = core::RemoteAddr(none_);
  v.true_ = core::RemoteAddr(true_);
  v.long_type = core::RemoteAddr(long_type_);
  v.list_type = core::RemoteAddr(list_type_);
  v.tuple_type = core::RemoteAddr(tuple_type_);
  v.cell_type = core::RemoteAddr(cell_type_);
  symbols_.version = l.py_version;
  symbols_.target_path = "fake image";

  // The interpreter list: in _PyRuntime (3.7+) or a static variable.
  uint64_t head_slot = 0, current_slot = 0;
  if (versions::present(l.runtime_interpreters_head)) {
    uint64_t runtime = allocate("runtime", std::max(end_of(l.runtime_interpreters_head,
                                                           l.runtime_tstate_current),
                                                    l.sizeof_debug_offsets));
    symbols_.runtime = core::RemoteAddr(runtime);
    head_slot = versions::address_of(core::RemoteAddr(runtime), l.runtime_interpreters_head).value();
    if (versions::present(l.runtime_tstate_current))
      current_slot = versions::address_of(core::RemoteAddr(runtime), l.runtime_tstate_current).value();
    if (l.debug_checks != nullptr) {
      write(runtime, std::as_bytes(std::span(l.debug_cookie, static_cast<size_t>(l.debug_cookie_size))));
      set(runtime, l.debug_offsets_version, l.py_version_hex);
      for (int64_t i = 0; i < l.debug_check_count; ++i)
        set(runtime, l.debug_checks[i].position, l.debug_checks[i].expected);
    }
  } else {
    head_slot = allocate("interp_head", 8);
    current_slot = allocate("tstate_current", 8);
    symbols_.interp_head = core::RemoteAddr(head_slot);
    symbols_.tstate_current = core::RemoteAddr(current_slot);
  }

  const uint64_t interp = allocate("interp", end_of(l.interp_next, l.interp_tstate_head, l.interp_gil));
  set(head_slot, 0, interp);

  // A frame owned by a thread: any owner value that is none of the others.
  int64_t thread_owner = 0;
  while (thread_owner == l.owner_cstack || thread_owner == l.owner_interpreter ||
         thread_owner == l.owner_generator)
    ++thread_owner;

  uint64_t previous_tstate = 0, gil = 0;
  std::vector<uint64_t> tstates;
  for (const FakeThread& thread : threads) {
    const uint64_t tstate = allocate("tstate", l.sizeof_tstate);
    tstates.push_back(tstate);
    if (previous_tstate == 0) {
      set(interp, l.interp_tstate_head, tstate);
      // 3.12+: the GIL is the interpreter's (filled in below).
      if (versions::present(l.interp_gil) && current_slot == 0) {
        gil = allocate("gil", end_of(l.gil_locked, l.gil_last_holder, l.gil_enabled));
        set(interp, l.interp_gil, gil);
      }
    } else {
      set(previous_tstate, l.tstate_next, tstate);
    }
    previous_tstate = tstate;
    set(tstate, l.tstate_interp, interp);
    set(tstate, l.tstate_thread_id, thread.thread_id);
    set(tstate, l.tstate_native_thread_id, static_cast<uint64_t>(thread.native_id));

    std::vector<uint64_t> codes;
    for (const FakeFrame& f : thread.frames) codes.push_back(make_code(f));
    auto lasti = [&](size_t i) { return static_cast<uint64_t>(thread.frames[i].offset); };

    // Each frame's variables: what their slots hold.
    std::vector<std::vector<uint64_t>> slots;
    size_t most_slots = 0;
    for (const FakeFrame& f : thread.frames) {
      auto& s = slots.emplace_back();
      for (const FakeLocal& local : f.locals) s.push_back(make_slot(local));
      most_slots = std::max(most_slots, s.size());
    }
    auto set_slots = [&](uint64_t frame, size_t i, const versions::PlaceMember& at) {
      for (size_t k = 0; k < slots[i].size(); ++k) {
        // 3.14+: a tagged reference to None, as to any immortal object.
        const bool tag = thread.frames[i].locals[k].value.kind == FakeValue::kNone &&
                         thread.frames[i].locals[k].kind != core::LocalKind::kCell &&
                         thread.frames[i].locals[k].kind != core::LocalKind::kFree;
        const uint64_t bits = tag ? l.stackref_tag_mask & (~l.stackref_tag_mask + 1) : 0;
        set(frame, at.offset + static_cast<int64_t>(8 * k), slots[i][k] | bits);
      }
    };

    if (l.frame_model == PYFLAME_FRAME_OBJECTS) {
      uint64_t outer = 0;
      const int64_t size = std::max(end_of(l.ob_refcnt, l.ob_type, l.frame_back, l.frame_code, l.frame_lasti, l.frame_gen),
                                    l.frame_localsplus.offset + static_cast<int64_t>(8 * most_slots));
      for (size_t i = thread.frames.size(); i-- > 0;) {
        const uint64_t frame = allocate("frame", size);
        set_slots(frame, i, l.frame_localsplus);
        set(frame, l.ob_refcnt, 1);  // live: a freed frame's count is 0
        set(frame, l.ob_type, kFrameType);
        set(frame, l.frame_back, outer);
        set(frame, l.frame_code, codes[i]);
        // f_lasti: in bytes, in code units from 3.10 on.
        set(frame, l.frame_lasti, lasti(i) / static_cast<uint64_t>(l.lasti_unit_bytes));
        outer = frame;
      }
      set(tstate, l.tstate_frame, outer);
      continue;
    }
    // 3.11+: the frames sit one after another in a data-stack chunk, the
    // outermost lowest; below them a C-stack shim frame where the version
    // has them (3.12+), which the walker must step over.
    // (3.14+: owned by the interpreter; 3.15+: the thread state's base
    // frame, where every stack must end.)
    uint64_t outer = 0;
    const int64_t shim_owner = l.owner_cstack != PYFLAME_ABSENT ? l.owner_cstack : l.owner_interpreter;
    if (shim_owner != PYFLAME_ABSENT) {
      outer = allocate("shim frame", l.sizeof_iframe);
      set(outer, l.iframe_owner, static_cast<uint64_t>(shim_owner));
      set(tstate, l.tstate_base_frame, outer);
    }
    const auto stride = static_cast<uint64_t>(l.sizeof_iframe) + std::max(kLocals, 8 * most_slots);
    const uint64_t chunk = allocate("data stack", static_cast<int64_t>(stride * thread.frames.size()));
    for (size_t k = 0; k < thread.frames.size(); ++k) {
      const size_t i = thread.frames.size() - 1 - k;  // outermost first
      const uint64_t frame = chunk + k * stride;
      objects_.push_back({"frame", frame, static_cast<size_t>(l.sizeof_iframe), {}});
      // Tagged references (3.14+) carry tag bits: every other frame has one.
      const uint64_t tag = (k % 2 == 1) ? (l.stackref_tag_mask & (~l.stackref_tag_mask + 1)) : 0;
      set(frame, l.iframe_code, codes[i] | tag);
      set(frame, l.iframe_previous, outer);
      set(frame, l.iframe_instr, versions::address_of(core::RemoteAddr(codes[i]), l.code_adaptive).value() + lasti(i));
      set(frame, l.iframe_owner, static_cast<uint64_t>(thread_owner));
      set_slots(frame, i, l.iframe_localsplus);
      // 3.12, 3.13: the running frame's stacktop is -1, a caller's its
      // depth: its locals and a few more.
      set(frame, l.iframe_stacktop, i == 0 ? ~uint64_t{0} : std::max<uint64_t>(1, slots[i].size()) + 2);
      // 3.11: a frame entered from C code is the first of its eval-loop call.
      if (thread.frames[i].called_from_c) set(frame, l.iframe_is_entry, 1);
      if (thread.frames[i].called_from_c && shim_owner != PYFLAME_ABSENT && k > 0) {
        const uint64_t shim = allocate("shim frame", l.sizeof_iframe);
        set(shim, l.iframe_owner, static_cast<uint64_t>(shim_owner));
        set(shim, l.iframe_previous, outer);
        set(outer, l.iframe_stacktop, ~uint64_t{0});
        set(frame, l.iframe_previous, shim);
      }
      outer = frame;
    }
    if (versions::present(l.tstate_current_frame)) {
      set(tstate, l.tstate_current_frame, outer);
    } else {
      const uint64_t cframe = allocate("cframe", end_of(l.cframe_current_frame));
      set(cframe, l.cframe_current_frame, outer);
      set(tstate, l.tstate_cframe, cframe);
    }
  }

  // Who holds the GIL. Up to 3.11: the current thread state, NULL while
  // no thread holds it. 3.12+: `locked`, and the last holder, which stays
  // set when the GIL is released (the first thread's, then).
  const uint64_t holder = gil_holder && *gil_holder < tstates.size() ? tstates[*gil_holder] : 0;
  if (current_slot) set(current_slot, 0, holder);
  if (gil != 0) {
    set(gil, l.gil_enabled, 1);  // free-threaded builds: as with PYTHON_GIL=1
    set(gil, l.gil_locked, holder != 0);
    set(gil, l.gil_last_holder, holder != 0 ? holder : tstates.front());
  }
}

uint64_t FakeImage::allocate(const char* kind, int64_t size) {
  const size_t at = (bytes_.size() + 15) & ~size_t{15};
  const auto n = static_cast<size_t>(std::max<int64_t>(size, 8));
  bytes_.resize(at + n);
  objects_.push_back({kind, kBase + at, n, {}});
  return kBase + at;
}

void FakeImage::set(uint64_t object, int64_t offset, uint64_t value, size_t width) {
  if (offset == PYFLAME_ABSENT) return;
  const uint64_t addr = object + static_cast<uint64_t>(offset);
  write(addr, std::as_bytes(std::span(&value, 1)).first(std::min<size_t>(width, 8)));
  // The fuzz target's targets: the object this field belongs to.
  for (auto it = objects_.rbegin(); it != objects_.rend(); ++it) {
    if (addr >= it->addr && addr < it->addr + it->size) {
      it->fields.push_back({addr, width});
      break;
    }
  }
}

void FakeImage::set_bitfield(uint64_t object, const pyflame_bitfield& field, uint32_t value) {
  const uint64_t addr = object + static_cast<uint64_t>(field.byte_offset);
  uint32_t word = 0;
  read(core::RemoteAddr(addr), std::as_writable_bytes(std::span(&word, 1)));
  word = (word & ~field.mask) | ((value << field.shift) & field.mask);
  write(addr, std::as_bytes(std::span(&word, 1)));
}

uint64_t FakeImage::make_bytes(const std::string& data) {
  const uint64_t object = allocate("bytes", versions::offset_of(l_.bytes_sval) + static_cast<int64_t>(data.size()) + 1);
  set(object, l_.ob_type, bytes_type_);
  set(object, l_.ob_size, data.size());
  write(versions::address_of(core::RemoteAddr(object), l_.bytes_sval).value(), std::as_bytes(std::span(data)));
  return object;
}

uint64_t FakeImage::make_text(const std::string& text) {
  if (l_.string_model == PYFLAME_STRINGS_BYTES) return make_bytes(text);
  // A compact ASCII str: the header, then the characters.
  const uint64_t object = allocate("str", l_.sizeof_ascii_object + static_cast<int64_t>(text.size()) + 1);
  set(object, l_.ob_type, text_type_);
  set(object, l_.unicode_length, text.size());
  set_bitfield(object, l_.unicode_compact, 1);
  set_bitfield(object, l_.unicode_ascii, 1);
  set_bitfield(object, l_.unicode_kind, 1);
  write(object + static_cast<uint64_t>(l_.sizeof_ascii_object), std::as_bytes(std::span(text)));
  return object;
}

uint64_t FakeImage::make_code(const FakeFrame& frame) {
  const pyflame_layout& l = l_;
  const uint64_t name = make_text(frame.function);
  const uint64_t filename = make_text(frame.filename);
  const uint64_t qualname = frame.qualname.empty() ? name : make_text(frame.qualname);
  const int bytes = code_bytes(frame);
  std::vector<FakeLine> lines = frame.lines;
  if (lines.empty()) lines.push_back({0, frame.first_line});
  const uint64_t table = make_bytes(encode_line_table(l, lines, frame.first_line, bytes));
  const int64_t size = end_of(l.ob_type, l.ob_size, l.code_name, l.code_qualname, l.code_filename,
                              l.code_firstlineno, l.code_flags, l.code_line_table,
                              l.code_firsttraceable, l.code_nlocalsplus, l.code_adaptive) + bytes;
  const uint64_t code = allocate("code", size);
  set(code, l.ob_type, kCodeType);
  set(code, l.code_name, name);
  set(code, l.code_qualname, qualname);
  set(code, l.code_filename, filename);
  set(code, l.code_line_table, table);
  set(code, l.code_firstlineno, static_cast<uint64_t>(frame.first_line));
  // The bytecode's length in code units (3.11+ checks instruction pointers
  // against it): the bytes after co_code_adaptive.
  if (l.frame_model == PYFLAME_INTERPRETER_FRAMES)
    set(code, l.ob_size, static_cast<uint64_t>(bytes / l.lasti_unit_bytes));
  // 3.11: each frame stands at an instruction that pushes a frame (a call),
  // as a caller must; the others' bytes are CACHE entries (0).
  if (l.pushes_frame != nullptr) {
    int opcode = 1;
    while (opcode < 256 && l.pushes_frame[opcode] == 0) ++opcode;
    set(code, l.code_adaptive.offset + frame.offset, static_cast<uint64_t>(opcode), 1);
  }
  set(code, l.code_firsttraceable, 0);
  // At least one local: a caller's stacktop is never 0.
  set(code, l.code_nlocalsplus, std::max<uint64_t>(1, frame.locals.size()));

  // dump --locals: the names of the variables, and how many are arguments.
  using core::LocalKind;
  auto names_of = [&](auto keep) {
    std::vector<uint64_t> names;
    for (const FakeLocal& local : frame.locals)
      if (keep(local.kind)) names.push_back(make_text(local.name));
    return make_tuple(names);
  };
  uint64_t args = 0;
  for (const FakeLocal& local : frame.locals) args += local.kind == LocalKind::kArg;
  set(code, l.code_argcount, args);
  set(code, l.code_kwonlyargcount, 0);
  if (versions::present(l.code_localsplusnames)) {
    set(code, l.code_localsplusnames, names_of([](LocalKind) { return true; }));
    std::string kinds;
    for (const FakeLocal& local : frame.locals)
      kinds += static_cast<char>(local.kind == LocalKind::kCell   ? l.fast_cell
                                 : local.kind == LocalKind::kFree ? l.fast_free
                                                                  : 0);
    set(code, l.code_localspluskinds, make_bytes(kinds));
  } else {
    auto is_local = [](LocalKind k) { return k == LocalKind::kArg || k == LocalKind::kLocal; };
    set(code, l.code_varnames, names_of(is_local));
    set(code, l.code_cellvars, names_of([](LocalKind k) { return k == LocalKind::kCell; }));
    set(code, l.code_freevars, names_of([](LocalKind k) { return k == LocalKind::kFree; }));
    set(code, l.code_nlocals, static_cast<uint64_t>(std::count_if(
                                  frame.locals.begin(), frame.locals.end(),
                                  [&](const FakeLocal& local) { return is_local(local.kind); })));
  }
  return code;
}

uint64_t FakeImage::make_type(const char* name) {
  const std::string text(name);
  const uint64_t chars = allocate("type name", static_cast<int64_t>(text.size()) + 1);
  write(chars, std::as_bytes(std::span(text.data(), text.size() + 1)));
  const uint64_t type = allocate("type", end_of(l_.ob_type, l_.type_name));
  set(type, l_.type_name, chars);
  return type;
}

uint64_t FakeImage::make_tuple(const std::vector<uint64_t>& items) {
  const uint64_t tuple = allocate("tuple", l_.tuple_items.offset + static_cast<int64_t>(8 * items.size()));
  set(tuple, l_.ob_type, tuple_type_);
  set(tuple, l_.ob_size, items.size());
  for (size_t i = 0; i < items.size(); ++i) set(tuple, l_.tuple_items.offset + static_cast<int64_t>(8 * i), items[i]);
  return tuple;
}

uint64_t FakeImage::make_value(const FakeValue& value) {
  const pyflame_layout& l = l_;
  switch (value.kind) {
    case FakeValue::kNone: return none_;
    case FakeValue::kTrue: return true_;
    case FakeValue::kText: return make_text(value.text);
    case FakeValue::kList: {
      const uint64_t list = allocate("list", end_of(l.ob_type, l.ob_size));
      set(list, l.ob_type, list_type_);
      set(list, l.ob_size, static_cast<uint64_t>(value.number));
      return list;
    }
    case FakeValue::kInt: break;
  }
  // An int: its magnitude in digits of PyLong_SHIFT bits, and its sign in
  // ob_size (to 3.11) or lv_tag (3.12+).
  const bool negative = value.number < 0;
  uint64_t magnitude = negative ? uint64_t{0} - static_cast<uint64_t>(value.number) : static_cast<uint64_t>(value.number);
  std::vector<uint64_t> digits;
  for (; magnitude != 0; magnitude >>= l.long_shift) digits.push_back(magnitude & ((uint64_t{1} << l.long_shift) - 1));
  const uint64_t object = allocate("int", l.long_digits.offset + static_cast<int64_t>(digits.size()) * l.sizeof_digit);
  set(object, l.ob_type, long_type_);
  if (l.long_non_size_bits != PYFLAME_ABSENT) {
    const auto sign = static_cast<uint64_t>(digits.empty() ? l.long_sign_zero : negative ? l.long_sign_negative : 0);
    set(object, l.long_tag, (digits.size() << l.long_non_size_bits) | sign);
  } else {
    set(object, l.long_tag, negative ? uint64_t{0} - digits.size() : digits.size());
  }
  for (size_t i = 0; i < digits.size(); ++i)
    set(object, l.long_digits.offset + static_cast<int64_t>(i) * l.sizeof_digit, digits[i],
        static_cast<size_t>(l.sizeof_digit));
  return object;
}

uint64_t FakeImage::make_slot(const FakeLocal& local) {
  const uint64_t value = make_value(local.value);
  if (local.kind != core::LocalKind::kCell && local.kind != core::LocalKind::kFree) return value;
  const uint64_t cell = allocate("cell", end_of(l_.ob_type, l_.cell_ref));
  set(cell, l_.ob_type, cell_type_);
  set(cell, l_.cell_ref, value);
  return cell;
}

void FakeImage::write(uint64_t addr, std::span<const std::byte> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t a = addr + i;
    if (a >= kBase && a - kBase < bytes_.size()) bytes_[a - kBase] = data[i];
  }
}

void FakeImage::write_u64(uint64_t addr, uint64_t value) {
  write(addr, std::as_bytes(std::span(&value, 1)));
}

bool FakeImage::read(core::RemoteAddr addr, std::span<std::byte> into) const {
  const uint64_t a = addr.value();
  if (a < kBase || a - kBase > bytes_.size() || into.size() > bytes_.size() - (a - kBase)) return false;
  if (into.empty()) return true;
  std::memcpy(into.data(), bytes_.data() + (a - kBase), into.size());
  return true;
}

void FakeImage::read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const {
  ok.assign(requests.size(), false);
  for (size_t i = 0; i < requests.size(); ++i) ok[i] = read(requests[i].addr, requests[i].into);
}

size_t FakeImage::read_prefix(core::RemoteAddr addr, std::span<std::byte> into) const {
  const uint64_t a = addr.value();
  if (a < kBase || a - kBase >= bytes_.size()) return 0;
  const size_t n = std::min(into.size(), bytes_.size() - static_cast<size_t>(a - kBase));
  if (n == 0) return 0;
  std::memcpy(into.data(), bytes_.data() + (a - kBase), n);
  return n;
}

}  // namespace pyflame::test

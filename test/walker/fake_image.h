// SPDX-License-Identifier: Apache-2.0
// A fake target for the walker: an interpreter's objects (runtime,
// interpreter and thread states, frames, code objects, strings) laid out in
// one block of memory with the offsets of a version's layout table, the
// same table the real binary reads with. The walker's image test checks
// what it reads back; the walker's fuzz target corrupts it first.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/sampling/snapshot.h"
#include "core/target/memory.h"
#include "test/walker/fake_line_table.h"
#include "versions/layout.h"
#include "versions/walker/layout_module.h"
#include "versions/walker/member.h"

namespace pyflame::test {

// dump --locals: what a frame's variable holds.
struct FakeValue {
  enum Kind { kNone, kTrue, kInt, kText, kList } kind = kNone;
  int64_t number = 0;     // kInt: the value; kList: its length
  std::string text = {};  // kText (ASCII)
};

// A variable of a frame. A frame lists its arguments first, then its
// locals, cells and free variables, the order of the slots up to 3.10.
struct FakeLocal {
  std::string name;
  core::LocalKind kind = core::LocalKind::kLocal;
  FakeValue value = {};
};

struct FakeFrame {
  std::string function;
  std::string filename;
  int first_line = 1;                // co_firstlineno
  std::string qualname = {};         // co_qualname (3.11+); empty: the same as `function`
  std::vector<FakeLine> lines = {};  // the line table; empty: all of the code on first_line
  int offset = 0;                    // the frame's instruction, in bytes from the code's start
  // Entered from C code: marked as its call's entry frame (3.11), or a
  // C-stack shim frame between it and its caller, whose stacktop is -1 as
  // it runs C code (3.12+).
  bool called_from_c = false;
  std::vector<FakeLocal> locals = {};  // dump --locals
};

struct FakeThread {
  uint64_t thread_id = 0;
  int64_t native_id = 0;
  std::vector<FakeFrame> frames;  // innermost first
};

class FakeImage : public core::Memory {
 public:
  // A word of an object that points somewhere or counts something: what the
  // fuzz target aims its corruptions at.
  struct Field {
    uint64_t addr;
    size_t size;
  };
  struct Object {
    const char* kind;
    uint64_t addr;
    size_t size;
    std::vector<Field> fields;
  };

  // The thread `gil_holder` (an index into `threads`; nullopt: none) holds
  // the GIL, in the version's own shape: the current thread state's slot
  // (_PyThreadState_Current, _PyRuntime.gilstate.tstate_current) up to
  // 3.11, the interpreter's GIL struct (locked, last_holder) from 3.12 on;
  // a free-threaded build's GIL is enabled (its `enabled` set).
  FakeImage(const pyflame_layout& layout, const std::vector<FakeThread>& threads,
            std::optional<size_t> gil_holder = 0);

  const versions::TargetSymbols& symbols() const { return symbols_; }
  const std::vector<Object>& objects() const { return objects_; }
  uint64_t base() const { return kBase; }
  size_t size() const { return bytes_.size(); }
  // An address no read succeeds at.
  static constexpr uint64_t kUnmapped = 0x7000'0000'0000;

  // Overwrites bytes of the image; what falls outside it is dropped.
  void write(uint64_t addr, std::span<const std::byte> data);
  void write_u64(uint64_t addr, uint64_t value);
  // Overwrites a member of an object, at the member's measured width.
  template <typename M>
  void write_member(uint64_t object, const M& member, uint64_t value) {
    write(versions::address_of(core::RemoteAddr(object), member).value(),
          std::as_bytes(std::span(&value, 1)).first(versions::width(member)));
  }

  bool read(core::RemoteAddr addr, std::span<std::byte> into) const override;
  void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const override;
  size_t read_prefix(core::RemoteAddr addr, std::span<std::byte> into) const override;

 private:
  static constexpr uint64_t kBase = 0x10'0000;

  // Reserves `size` zeroed bytes (16-aligned) and names the object.
  uint64_t allocate(const char* kind, int64_t size);
  // Sets a member of an object at its measured width; one description
  // builds every version's image, so a member this version lacks is skipped.
  void set(uint64_t object, const versions::WordMember& member, uint64_t value) {
    if (versions::present(member)) set(object, member.offset, value, versions::width(member));
  }
  void set(uint64_t object, const versions::IntegerMember& member, uint64_t value) {
    if (versions::present(member)) set(object, member.offset, value, versions::width(member));
  }
  // Sets `width` bytes at `offset` (PYFLAME_ABSENT: no-op).
  void set(uint64_t object, int64_t offset, uint64_t value, size_t width = 8);
  void set_bitfield(uint64_t object, const pyflame_bitfield& field, uint32_t value);
  uint64_t make_text(const std::string& text);
  uint64_t make_bytes(const std::string& data);
  uint64_t make_code(const FakeFrame& frame);
  // dump --locals: a type object named `name`, and the objects of values.
  uint64_t make_type(const char* name);
  uint64_t make_tuple(const std::vector<uint64_t>& items);
  uint64_t make_value(const FakeValue& value);
  // What a variable's slot holds: its value, or (cells, free variables)
  // the cell holding it.
  uint64_t make_slot(const FakeLocal& local);

  // The type objects and singletons of the image (dump --locals reads
  // their tp_name).
  uint64_t text_type_ = 0, bytes_type_ = 0, tuple_type_ = 0, list_type_ = 0, long_type_ = 0,
           none_type_ = 0, bool_type_ = 0, cell_type_ = 0, none_ = 0, true_ = 0;

  const pyflame_layout& l_;
  std::vector<std::byte> bytes_;
  std::vector<Object> objects_;
  versions::TargetSymbols symbols_;
};

}  // namespace pyflame::test

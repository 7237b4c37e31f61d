// SPDX-License-Identifier: Apache-2.0
// A stopped thread's registers, numbered as DWARF numbers them: what the
// unwinder starts from. Live threads give them through ptrace; a core file
// will give them from its NT_PRSTATUS notes.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <array>
#include <cstdint>
#include <optional>

namespace pyflame::core {

struct Registers {
  // x86-64: rax rdx rcx rbx rsi rdi rbp rsp r8-r15, then the return
  // address column (rip): DWARF registers 0-16.
  static constexpr int kCount = 17;
  static constexpr int kStackPointer = 7;  // its DWARF number
  std::array<uint64_t, kCount> dwarf{};
  uint64_t pc() const { return dwarf[16]; }
  uint64_t sp() const { return dwarf[7]; }
};

#if defined(__x86_64__)
// The registers of a ptrace GETREGSET, or of a core file's NT_PRSTATUS note.
Registers registers_from(const user_regs_struct& regs);
#endif

// Whether this build can unwind native stacks at all (x86-64 only for now).
bool native_unwinding_supported();

// The registers of `tid`, which must be ptrace-stopped by us; nullopt if it
// is not (it exited, or had not stopped).
std::optional<Registers> read_registers(pid_t tid);

}  // namespace pyflame::core

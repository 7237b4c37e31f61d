// SPDX-License-Identifier: Apache-2.0
#include "core/native/registers.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

namespace pyflame::core {

#if defined(__x86_64__)

bool native_unwinding_supported() { return true; }

std::optional<Registers> read_registers(pid_t tid) {
  user_regs_struct regs{};
  iovec io{&regs, sizeof regs};
  if (::ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_PRSTATUS), &io) != 0)
    return std::nullopt;
  return registers_from(regs);
}

Registers registers_from(const user_regs_struct& regs) {
  Registers r;
  r.dwarf = {regs.rax, regs.rdx, regs.rcx, regs.rbx, regs.rsi, regs.rdi, regs.rbp, regs.rsp,
             regs.r8,  regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
             regs.rip};
  return r;
}

#else

bool native_unwinding_supported() { return false; }
std::optional<Registers> read_registers(pid_t) { return std::nullopt; }

#endif

}  // namespace pyflame::core

/*
 * Deliberate CPU exceptions for the `panic=` command-line key (Panic.swift). They are
 * real out-of-line functions so a backtrace shows them, and written so the compiler can
 * neither fold them away nor turn them into traps of its own.
 */
#ifdef SMP_GUEST
#include "KernelSupport.h"

/** #UD: an undefined instruction. */
__attribute__((noinline)) void fault_invalid_opcode(void) { __asm__ volatile("ud2"); }

/** #PF: a load from an unmapped address. */
__attribute__((noinline)) uint64_t fault_page_fault(uint64_t addr) {
  return *(volatile uint64_t *)(uintptr_t)addr;
}

/** #DE: an integer division by zero (the divisor is hidden from the compiler). */
__attribute__((noinline)) uint64_t fault_divide_error(uint64_t dividend) {
  uint64_t divisor = 0, q, r = 0;
  __asm__ volatile("" : "+r"(divisor));
  __asm__ volatile("divq %2" : "=a"(q), "+d"(r) : "r"(divisor), "a"(dividend));
  return q;
}

/** #GP: a load from a non-canonical address. */
__attribute__((noinline)) uint64_t fault_general_protection(void) {
  return *(volatile uint64_t *)(uintptr_t)0x8000000000000000ull;
}

/** #DF by stack overflow: recurse into the guard page; the #PF cannot be delivered. */
__attribute__((noinline)) uint64_t fault_stack_overflow(uint64_t depth) {
  volatile uint8_t frame[256];
  frame[0] = (uint8_t)depth;
  return fault_stack_overflow(depth + 1) + frame[0];
}

#endif

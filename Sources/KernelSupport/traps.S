/*
 * Traps: 256 interrupt stubs, 16 bytes apart (the IDT points at isr_stubs + 16 * vector),
 * and the common path that saves the registers and the FPU/SSE state, calls
 * isr_dispatch (Traps.swift) with the trap frame, and returns with iretq.
 */
#ifdef SMP_GUEST
#include "kernel_layout.h"

/* Exceptions for which the CPU pushes an error code: 8, 10-14, 17, 21, 29, 30. */
#define ERROR_CODE_VECTORS 0x60227D00

        .section .text.isr, "ax"
        .code64
        .align 16
        .global isr_stubs
isr_stubs:
        .set .Lvec, 0
        .rept 256
        .align 16
        .if .Lvec < 32
          .if ((ERROR_CODE_VECTORS >> .Lvec) & 1) == 0
            pushq $0
          .endif
        .else
          pushq $0
        .endif
        pushq $.Lvec
        jmp isr_common
        .set .Lvec, .Lvec + 1
        .endr

/*
 * On entry the CPU has aligned the stack and pushed ss, rsp, rflags, cs, rip; the stub
 * pushed an error code and the vector. After 15 registers the stack is 16-byte aligned
 * again, which fxsave and the C calling convention both need.
 */
isr_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rbx                 /* struct trap_frame * */
        subq $512, %rsp
        fxsave (%rsp)
        cld
        movq %rbx, %rdi
        call isr_dispatch
.Lisr_dispatch_return:                  /* smptop_root.isr_return (isr_return_address below) */
        fxrstor (%rsp)
        movq %rbx, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp                  /* vector, error code */
        iretq

/* Where isr_dispatch returns into isr_common, for the inspection root (a data word, so no
 * symbol splits isr_common's code). */
        .section .rodata
        .align 8
        .global isr_return_address
isr_return_address:
        .quad .Lisr_dispatch_return

        .section .note.GNU-stack, "", @progbits
#endif

/*
 * Kernel-thread context switch (Sched.swift): only the callee-saved registers and rsp are
 * saved; everything else is saved by the caller (a Swift call) or by isr_common when the
 * switch happens inside an interrupt handler (preemption).
 */
#ifdef SMP_GUEST
        .section .text.switch, "ax"
        .code64

/* void ctx_switch(uint64_t *save_rsp [rdi], uint64_t new_rsp [rsi]) */
        .global ctx_switch
ctx_switch:
        pushq %rbp
        pushq %rbx
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, (%rdi)
        movq %rsi, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbx
        popq %rbp
        ret

/* A new thread's first "return" from ctx_switch lands here. */
        .global kthread_start
kthread_start:
        xorl %ebp, %ebp
        andq $-16, %rsp
        call kthread_main
        ud2

        .section .note.GNU-stack, "", @progbits
#endif

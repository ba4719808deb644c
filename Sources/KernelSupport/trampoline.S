/*
 * AP start-up: the 16-bit trampoline the SIPI points at (copied to TRAMPOLINE_ADDR by
 * SMP.swift) and the AP's 32- and 64-bit entry. Every AP runs this at the same time:
 * nothing here writes shared memory, and each AP finds its own stack and per-lcpu area
 * through its APIC id (apic_to_lcpu, filled by the BSP before the SIPIs).
 */
#ifdef SMP_GUEST
#include "kernel_layout.h"

        .section .rodata.trampoline, "a"
        .code16
        .global ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl (ap_gdt_descriptor - ap_trampoline_start)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $KERNEL_CS32, $ap_start32
        .align 8
ap_gdt_descriptor:                      /* same GDT as the BSP, linear address */
        .word GDT_TSS_FIRST + LCPU_MAX * 16 - 1
        .long gdt
ap_trampoline_end:

        .section .text.boot, "ax"
        .code32
ap_start32:
        movw $KERNEL_DS, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        /* Which lcpu am I? CPUID.1:EBX[31:24] is the initial APIC id. */
        movl $1, %eax
        cpuid
        shrl $24, %ebx
        movzbl apic_to_lcpu(%ebx), %esi
        cmpl $0xFF, %esi
        je ap_lost
        movl %esi, %eax
        imull $LCPU_STACKS_STRIDE, %eax
        addl $(lcpu_stacks + KERNEL_STACK_TOP_OFFSET), %eax
        movl %eax, %esp
        movl $start64_ap, %edi
        jmp enter_long_mode             /* keeps %esi = lcpu index */
ap_lost:
        cli
        hlt
        jmp ap_lost

        .code64
start64_ap:
        movw $KERNEL_DS, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorl %eax, %eax
        movw %ax, %fs
        movw %ax, %gs
        lidt idt_descriptor(%rip)
        movl %esi, %edi                 /* lcpu index, zero-extended */
        /* GS base -> lcpu_areas[index] (its self pointer is set by the BSP) */
        movq %rdi, %rax
        imulq $LCPU_AREA_SIZE, %rax
        leaq lcpu_areas(%rip), %rdx
        addq %rdx, %rax
        movq %rax, %rdx
        shrq $32, %rdx
        movl $MSR_GS_BASE, %ecx
        wrmsr
        xorl %ebp, %ebp
        call ap_main
1:      cli
        hlt
        jmp 1b

        .section .note.GNU-stack, "", @progbits
#endif

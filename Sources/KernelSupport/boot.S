/*
 * Boot: the multiboot header (a.out kludge, so QEMU's -kernel loads this ELF64 image),
 * the 32-bit entry, the identity-mapped page tables (0-4 GiB), the GDT, and the switch
 * to long mode shared by the BSP and the APs (the AP side is in trampoline.S).
 */
#ifdef SMP_GUEST
#include "kernel_layout.h"

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00010002 /* want the memory map; bit 16: header carries load addresses */

/* ------------------------------------------------------------------ multiboot header */
        .section .multiboot, "a"
        .align 4
multiboot_header:
        .long MULTIBOOT_MAGIC
        .long MULTIBOOT_FLAGS
        .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)
        .long multiboot_header  /* header_addr */
        .long __kernel_start    /* load_addr */
        .long __load_end        /* load_end_addr: file-backed part */
        .long __bss_end         /* bss_end_addr: QEMU zero-fills up to here */
        .long _start            /* entry_addr */

/* ------------------------------------------------------------------ 32-bit entry (BSP) */
        .section .text.boot, "ax"
        .code32
        .global _start
_start:
        cli
        cld
        movl %eax, boot_magic
        movl %ebx, boot_info
        rdtsc
        movl %eax, boot_tsc
        movl %edx, boot_tsc + 4

        lgdt gdt_descriptor
        ljmp $KERNEL_CS32, $1f
1:      movw $KERNEL_DS, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        /* lcpu 0's kernel stack */
        movl $(lcpu_stacks + KERNEL_STACK_TOP_OFFSET), %esp

        call build_page_tables
        movl $start64_bsp, %edi
        jmp enter_long_mode

/*
 * Identity map 0-4 GiB: PML4[0] -> PDPT -> 4 page directories of 2 MiB pages; the first
 * 8 MiB instead go through 4 page tables of 4 KiB pages so single pages (stack guards)
 * can be unmapped. 3-4 GiB (MMIO: LAPIC, IOAPIC) is mapped uncached.
 */
build_page_tables:
        movl $(boot_pdpt + 3), boot_pml4
        xorl %ecx, %ecx
1:      movl %ecx, %eax
        shll $12, %eax
        addl $(boot_pd + 3), %eax
        movl %eax, boot_pdpt(, %ecx, 8)
        incl %ecx
        cmpl $4, %ecx
        jb 1b

        xorl %ecx, %ecx                 /* 2048 directory entries of 2 MiB */
2:      movl %ecx, %eax
        shll $21, %eax
        orl $0x83, %eax                 /* present, writable, 2 MiB */
        cmpl $1536, %ecx
        jb 3f
        orl $0x18, %eax                 /* >= 3 GiB: PCD | PWT */
3:      movl %eax, boot_pd(, %ecx, 8)
        movl $0, boot_pd + 4(, %ecx, 8)
        incl %ecx
        cmpl $2048, %ecx
        jb 2b

        xorl %ecx, %ecx                 /* 4 KiB table entries for the first SMALL_PAGES_LIMIT bytes */
4:      movl %ecx, %eax
        shll $12, %eax
        orl $0x3, %eax
        movl %eax, boot_pt(, %ecx, 8)
        incl %ecx
        cmpl $(SMALL_PAGES_LIMIT / PAGE_SIZE), %ecx
        jb 4b

        xorl %ecx, %ecx                 /* the first PD entries -> those page tables */
5:      movl %ecx, %eax
        shll $12, %eax
        addl $(boot_pt + 3), %eax
        movl %eax, boot_pd(, %ecx, 8)
        incl %ecx
        cmpl $(SMALL_PAGES_LIMIT >> 21), %ecx
        jb 5b
        ret

/*
 * Enter long mode and jump to the 64-bit address in %edi (needs a stack).
 * CR4: PAE, OSFXSR, OSXMMEXCPT (Swift uses SSE); CR0: PG, NE, MP, PE, EM clear.
 */
        .global enter_long_mode
enter_long_mode:
        movl %cr4, %eax
        orl $0x620, %eax
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $0x100, %eax                /* LME */
        wrmsr
        movl %cr0, %eax
        andl $~0x4, %eax
        orl $0x80000023, %eax
        movl %eax, %cr0
        pushl $KERNEL_CS
        pushl %edi
        lret

/* ------------------------------------------------------------------ 64-bit entry (BSP) */
        .code64
start64_bsp:
        movw $KERNEL_DS, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorl %eax, %eax
        movw %ax, %fs
        movw %ax, %gs
        movl $(lcpu_stacks + KERNEL_STACK_TOP_OFFSET), %esp
        /* GS base -> lcpu_areas[0], whose first word points at itself */
        leaq lcpu_areas(%rip), %rax
        movq %rax, (%rax)
        movq %rax, %rdx
        shrq $32, %rdx
        movl $MSR_GS_BASE, %ecx
        wrmsr
        xorl %ebp, %ebp
        call kmain
1:      cli
        hlt
        jmp 1b

/** void idt_load(void): load the shared IDT. */
        .global idt_load
idt_load:
        lidt idt_descriptor(%rip)
        ret

/* ------------------------------------------------------------------ GDT */
        .section .data
        .align 16
        .global gdt
gdt:
        .quad 0                         /* null */
        .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code */
        .quad 0x00CF92000000FFFF        /* 0x10: flat data */
        .quad 0x00CF9A000000FFFF        /* 0x18: 32-bit code */
        .fill LCPU_MAX * 2, 8, 0        /* 0x20: one 16-byte TSS descriptor per lcpu (GDT.swift) */
gdt_end:

        .align 8
        .global gdt_descriptor
gdt_descriptor:
        .word gdt_end - gdt - 1
        .quad gdt

        .align 8
        .global idt_descriptor
idt_descriptor:
        .word 256 * 16 - 1
        .quad idt

        .align 8
        .global boot_tsc
boot_tsc:
        .quad 0
        .global boot_magic
boot_magic:
        .long 0
        .global boot_info
boot_info:
        .long 0

/* ------------------------------------------------------------------ page tables */
        .section .bss
        .align PAGE_SIZE
        .global boot_pml4, boot_pdpt, boot_pd, boot_pt
boot_pml4:
        .skip PAGE_SIZE
boot_pdpt:
        .skip PAGE_SIZE
boot_pd:
        .skip 4 * PAGE_SIZE
boot_pt:
        .skip (SMALL_PAGES_LIMIT / PAGE_SIZE) * 8

        .section .note.GNU-stack, "", @progbits
#endif

/*
 * Kernel layout constants shared by the assembly (boot.S, traps.S) and C.
 * Nothing here may be C-only: this header is included with __ASSEMBLER__ defined.
 */
#ifndef KERNEL_LAYOUT_H
#define KERNEL_LAYOUT_H

/* GDT selectors (boot.S builds the GDT). */
#define KERNEL_CS 0x08       /* 64-bit code */
#define KERNEL_DS 0x10       /* flat data */
#define KERNEL_CS32 0x18     /* 32-bit code: the BSP and the APs leave protected mode through it */
#define GDT_TSS_FIRST 0x20   /* lcpu i's TSS descriptor (16 bytes) is at selector 0x20 + 16 * i */

#define LCPU_MAX 64          /* = SMPTOP_MAX_LCPUS (checked in C) */

/* Per-lcpu stacks: [guard][kernel][guard][#DF][NMI][#MC], guard pages unmapped at boot. */
#define PAGE_SIZE 4096
#define STACK_GUARD_SIZE PAGE_SIZE
#define KERNEL_STACK_SIZE 16384
#define IST_DF_STACK_SIZE 8192
#define IST_NMI_STACK_SIZE 4096
#define IST_MC_STACK_SIZE 4096
#define LCPU_STACKS_STRIDE (STACK_GUARD_SIZE + KERNEL_STACK_SIZE + STACK_GUARD_SIZE + \
                            IST_DF_STACK_SIZE + IST_NMI_STACK_SIZE + IST_MC_STACK_SIZE)
/* Offset of the kernel stack's top inside one lcpu's stacks. */
#define KERNEL_STACK_TOP_OFFSET (STACK_GUARD_SIZE + KERNEL_STACK_SIZE)

/* sizeof(struct lcpu_area): the AP entry computes &lcpu_areas[i] with it (checked in C). */
#define LCPU_AREA_SIZE 320

/* Changes between IDLE and BUSY each lcpu_area remembers (the profiler dates late samples). */
#define LCPU_STATE_CHANGES 4

/* The AP start-up trampoline is copied here; the SIPI vector is its page number. */
#define TRAMPOLINE_ADDR 0x8000

/* The first 16 MiB are mapped with 4 KiB pages (guard pages), the rest of 0-4 GiB with 2 MiB. */
#define SMALL_PAGES_LIMIT 0x1000000

#define MSR_EFER 0xC0000080
#define MSR_GS_BASE 0xC0000101

#endif

/*
 * virtio support: what the PCI and virtio-net drivers (PCI.swift, VirtioPCI.swift,
 * Virtqueue.swift, VirtioNet.swift) need from C: 16/32-bit port input, volatile 8/16/32/64-bit
 * accesses to device registers and to the shared rings, a full fence, and a statically
 * allocated, identity-mapped pool for rings, packet buffers and the VIRTIO_DEV/VIRTQ records
 * (the kernel heap is a small bump allocator).
 */
#ifndef VIRTIO_SUPPORT_H
#define VIRTIO_SUPPORT_H

#if defined(SMP_GUEST) && defined(__x86_64__)
#include <stdint.h>

/** Size of virtio_pool (virtio_data.c). */
#define VIRTIO_POOL_SIZE (3u * 1024u * 1024u)

static inline uint32_t pci_inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint16_t pci_inw(uint16_t port) {
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline void pci_outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline void pci_outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }

/* Volatile accesses to device registers (uncached: BARs live above 3 GiB) and ring fields. */
static inline uint8_t vio_r8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static inline uint16_t vio_r16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static inline uint32_t vio_r32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static inline void vio_w8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static inline void vio_w16(uint64_t a, uint16_t v) { *(volatile uint16_t *)(uintptr_t)a = v; }
static inline void vio_w32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
static inline void vio_w64(uint64_t a, uint64_t v) { *(volatile uint64_t *)(uintptr_t)a = v; }
/** Full fence (lock or): store avail.idx, then read used.flags. */
static inline void vio_mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/** Compiler barrier: ring entry before index (x86 keeps stores in order). */
static inline void vio_wmb(void) { __asm__ volatile("" ::: "memory"); }

extern uint8_t virtio_pool[VIRTIO_POOL_SIZE];
static inline uint64_t virtio_pool_base(void) { return (uint64_t)(uintptr_t)virtio_pool; }
static inline uint64_t virtio_pool_size(void) { return VIRTIO_POOL_SIZE; }
static inline uint32_t abi_virtio_dev_stride(void) { return sizeof(struct smptop_virtio_dev); }
static inline uint32_t abi_virtq_stride(void) { return sizeof(struct smptop_virtq); }

#endif
#endif

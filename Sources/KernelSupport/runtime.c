/*
 * The few C library functions the Embedded Swift runtime and clang expect: memory
 * operations, the heap and putchar. The heap is BuddyHeap.swift on top of the buddy
 * allocator; until that is up, a small lock-free bump allocator serves (never freed).
 */
#ifdef SMP_GUEST
#include "KernelSupport.h"
#include <stddef.h>

void *memset(void *dst, int c, size_t n) {
  volatile uint8_t *d = dst;
  while (n--) *d++ = (uint8_t)c;
  return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
  volatile uint8_t *d = dst;
  const uint8_t *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  volatile uint8_t *d = dst;
  const uint8_t *s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const uint8_t *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

#define HEAP_SIZE (256 * 1024)
static __attribute__((aligned(64))) uint8_t heap[HEAP_SIZE];
static uint64_t heap_used;

/** Bump allocation, safe on every lcpu (CAS loop); memory is never returned. */
/* BuddyHeap.swift: NULL / false until the buddy allocator is up. */
void *buddy_heap_alloc(size_t size, size_t align);
bool buddy_heap_free(void *p);

int posix_memalign(void **out, size_t align, size_t size) {
  void *p = buddy_heap_alloc(size, align);
  if (p) {
    *out = p;
    return 0;
  }
  if (align < 16) align = 16;
  uint64_t old = __atomic_load_n(&heap_used, __ATOMIC_RELAXED);
  for (;;) {
    uint64_t start = (old + align - 1) & ~(uint64_t)(align - 1);
    uint64_t end = start + size;
    if (end > HEAP_SIZE) return 12; /* ENOMEM */
    if (__atomic_compare_exchange_n(&heap_used, &old, end, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      *out = &heap[start];
      return 0;
    }
  }
}

void free(void *p) {
  if (p) (void)buddy_heap_free(p); /* bump-heap memory is simply kept */
}

/** Raw COM1 output, only for code paths (debug builds) that call print(). */
int putchar(int c) {
  while ((inb(0x3F8 + 5) & 0x20) == 0) {
  }
  outb(0x3F8, (uint8_t)c);
  return c;
}

#endif

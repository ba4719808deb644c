/* The virtio drivers' static memory pool (see virtio_support.h). */
#ifdef SMP_GUEST
#include "KernelSupport.h"

/** Rings, packet buffers and ABI records; identity-mapped, so addresses are physical. */
__attribute__((aligned(4096))) uint8_t virtio_pool[VIRTIO_POOL_SIZE];
#endif

/* Guest-side C and inline-asm helpers. Filled by the guest work. */
#ifndef KERNEL_SUPPORT_H
#define KERNEL_SUPPORT_H
#include <smptop_abi.h>
#endif

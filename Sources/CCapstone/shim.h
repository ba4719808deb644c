/* Capstone (Debian libcapstone-dev) for Swift. */
#ifndef SMPTOP_CCAPSTONE_SHIM_H
#define SMPTOP_CCAPSTONE_SHIM_H
#include <capstone/capstone.h>
#endif

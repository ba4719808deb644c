/* The inspection ABI is header-only; this file lets SwiftPM build the C module. */
#include "smptop_abi.h"

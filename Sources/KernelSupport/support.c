#include "KernelSupport.h"

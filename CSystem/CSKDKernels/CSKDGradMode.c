// The one definition of the per-thread recording switch declared in CSKDGradMode.h.
#include "CSKDGradMode.h"

_Thread_local int skd_grad_disabled = 0;

// LAPACK's C interface (LAPACKE_sgesv, LAPACKE_sgesdd, ...).
#include <lapacke.h>

// Open MPI's C interface for SKDDistributed. MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...)
// are macros over cast addresses that Swift cannot import; the static inline functions below return them.
#include <mpi.h>

/// MPI_COMM_WORLD.
static inline MPI_Comm skd_mpi_comm_world(void) { return MPI_COMM_WORLD; }
/// MPI_FLOAT.
static inline MPI_Datatype skd_mpi_float(void) { return MPI_FLOAT; }
/// MPI_BYTE.
static inline MPI_Datatype skd_mpi_byte(void) { return MPI_BYTE; }
/// MPI_SUM.
static inline MPI_Op skd_mpi_sum(void) { return MPI_SUM; }
/// MPI_ERRORS_RETURN.
static inline MPI_Errhandler skd_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
/// MPI_THREAD_FUNNELED.
static inline int skd_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
/// MPI_SUCCESS.
static inline int skd_mpi_success(void) { return MPI_SUCCESS; }
/// MPI_IN_PLACE.
static inline void *skd_mpi_in_place(void) { return MPI_IN_PLACE; }

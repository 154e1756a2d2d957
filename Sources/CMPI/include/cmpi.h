#ifndef CMPI_H
#define CMPI_H

/// Open MPI, found at run time.
///
/// ConvSVD builds and runs on machines without MPI: nothing here includes
/// <mpi.h> or links libmpi. `cmpi_load` opens Open MPI's shared library with
/// dlopen and looks up the handful of functions and predefined handles the
/// data-parallel trainer needs. Open MPI defines MPI_COMM_WORLD, MPI_FLOAT,
/// MPI_SUM … as macros over the addresses of global objects
/// (`&ompi_mpi_comm_world`), which Swift cannot import; the shim looks those
/// objects up by name and hands them out as opaque pointers. This ties the
/// shim to Open MPI's ABI (libmpi.so.40, the ABI of Open MPI 3.0 to 5.x),
/// which is the MPI the project uses (Debian's openmpi-bin).

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libmpi (the path in $CONVSVD_LIBMPI, else libmpi.so.40, else
/// libmpi.so). Returns 0 on success; otherwise a non-zero value and
/// `cmpi_load_error` says why. Safe to call more than once.
int cmpi_load(void);
/// Why the last `cmpi_load` failed (a static string, never NULL).
const char *cmpi_load_error(void);
/// The library that was loaded, or "" before a successful `cmpi_load`.
const char *cmpi_library_path(void);

/// MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided); MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN).
int cmpi_init(void);
int cmpi_initialized(int *flag);
int cmpi_finalize(void);
int cmpi_comm_rank(int *rank);
int cmpi_comm_size(int *size);
/// MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD).
int cmpi_allreduce_sum_float(float *values, int count);
/// MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD).
int cmpi_allreduce_sum_double(double *values, int count);
/// MPI_Bcast(values, count, MPI_FLOAT, root, MPI_COMM_WORLD).
int cmpi_bcast_float(float *values, int count, int root);
/// MPI_Bcast(values, count, MPI_DOUBLE, root, MPI_COMM_WORLD).
int cmpi_bcast_double(double *values, int count, int root);
int cmpi_barrier(void);
int cmpi_abort(int code);
/// MPI_Error_string into `buffer` (at least 256 bytes).
void cmpi_error_string(int code, char *buffer, int capacity);
/// MPI_Wtime().
double cmpi_wtime(void);

#ifdef __cplusplus
}
#endif

#endif

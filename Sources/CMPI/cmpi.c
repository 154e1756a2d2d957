#include "cmpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Opaque stand-ins for Open MPI's handle types: every handle is a pointer
// to a library object, so `void *` has the same ABI.
typedef void *MPI_Comm;
typedef void *MPI_Datatype;
typedef void *MPI_Op;
typedef void *MPI_Errhandler;

// From Open MPI's mpi.h (stable since 3.0): MPI_IN_PLACE is ((void *) 1),
// MPI_THREAD_FUNNELED is 1, MPI_SUCCESS is 0, MPI_MAX_ERROR_STRING is 256.
#define CMPI_IN_PLACE ((void *)1)
#define CMPI_THREAD_FUNNELED 1

static void *library;
static char loaded_path[512];
static const char *load_error = "libmpi not loaded";

static MPI_Comm world;
static MPI_Datatype mpi_float, mpi_double;
static MPI_Op mpi_sum;
static MPI_Errhandler errors_return;

static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_initialized)(int *);
static int (*p_finalize)(void);
static int (*p_comm_rank)(MPI_Comm, int *);
static int (*p_comm_size)(MPI_Comm, int *);
static int (*p_allreduce)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm);
static int (*p_bcast)(void *, int, MPI_Datatype, int, MPI_Comm);
static int (*p_barrier)(MPI_Comm);
static int (*p_abort)(MPI_Comm, int);
static int (*p_error_string)(int, char *, int *);
static int (*p_comm_set_errhandler)(MPI_Comm, MPI_Errhandler);
static double (*p_wtime)(void);

static void *symbol(const char *name, int *missing) {
    void *s = dlsym(library, name);
    if (!s && !*missing) {  // the first missing name is the telling one
        static char message[256];
        snprintf(message, sizeof message, "%s has no symbol %s (not Open MPI?)", loaded_path, name);
        load_error = message;
    }
    if (!s) *missing = 1;
    return s;
}

int cmpi_load(void) {
    if (library) return 0;
    const char *candidates[3] = {getenv("CONVSVD_LIBMPI"), "libmpi.so.40", "libmpi.so"};
    for (int i = 0; i < 3 && !library; i++) {
        if (!candidates[i] || !*candidates[i]) continue;
        // RTLD_GLOBAL: Open MPI dlopens its own components, which resolve
        // libmpi's symbols through the global namespace.
        library = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (library) snprintf(loaded_path, sizeof loaded_path, "%s", candidates[i]);
    }
    if (!library) {
        load_error = "cannot load Open MPI's libmpi.so.40 (install openmpi-bin and libopenmpi3, or set CONVSVD_LIBMPI)";
        return 1;
    }
    int missing = 0;
    *(void **)&p_init_thread = symbol("MPI_Init_thread", &missing);
    *(void **)&p_initialized = symbol("MPI_Initialized", &missing);
    *(void **)&p_finalize = symbol("MPI_Finalize", &missing);
    *(void **)&p_comm_rank = symbol("MPI_Comm_rank", &missing);
    *(void **)&p_comm_size = symbol("MPI_Comm_size", &missing);
    *(void **)&p_allreduce = symbol("MPI_Allreduce", &missing);
    *(void **)&p_bcast = symbol("MPI_Bcast", &missing);
    *(void **)&p_barrier = symbol("MPI_Barrier", &missing);
    *(void **)&p_abort = symbol("MPI_Abort", &missing);
    *(void **)&p_error_string = symbol("MPI_Error_string", &missing);
    *(void **)&p_comm_set_errhandler = symbol("MPI_Comm_set_errhandler", &missing);
    *(void **)&p_wtime = symbol("MPI_Wtime", &missing);
    // The predefined handles: Open MPI's mpi.h defines MPI_COMM_WORLD as
    // (&ompi_mpi_comm_world), MPI_FLOAT as (&ompi_mpi_float) and so on.
    world = symbol("ompi_mpi_comm_world", &missing);
    mpi_float = symbol("ompi_mpi_float", &missing);
    mpi_double = symbol("ompi_mpi_double", &missing);
    mpi_sum = symbol("ompi_mpi_op_sum", &missing);
    errors_return = symbol("ompi_mpi_errors_return", &missing);
    if (missing) {
        dlclose(library);
        library = NULL;
        return 2;
    }
    load_error = "";
    return 0;
}

const char *cmpi_load_error(void) { return load_error; }
const char *cmpi_library_path(void) { return library ? loaded_path : ""; }

int cmpi_init(void) {
    int provided = 0;
    int rc = p_init_thread(NULL, NULL, CMPI_THREAD_FUNNELED, &provided);
    if (rc != 0) return rc;
    // Errors come back as codes (reported by the caller with their text)
    // rather than aborting inside the library.
    return p_comm_set_errhandler(world, errors_return);
}

int cmpi_initialized(int *flag) { return p_initialized(flag); }
int cmpi_finalize(void) { return p_finalize(); }
int cmpi_comm_rank(int *rank) { return p_comm_rank(world, rank); }
int cmpi_comm_size(int *size) { return p_comm_size(world, size); }

int cmpi_allreduce_sum_float(float *values, int count) {
    return p_allreduce(CMPI_IN_PLACE, values, count, mpi_float, mpi_sum, world);
}

int cmpi_allreduce_sum_double(double *values, int count) {
    return p_allreduce(CMPI_IN_PLACE, values, count, mpi_double, mpi_sum, world);
}

int cmpi_bcast_float(float *values, int count, int root) { return p_bcast(values, count, mpi_float, root, world); }
int cmpi_bcast_double(double *values, int count, int root) { return p_bcast(values, count, mpi_double, root, world); }
int cmpi_barrier(void) { return p_barrier(world); }
int cmpi_abort(int code) { return p_abort(world, code); }

void cmpi_error_string(int code, char *buffer, int capacity) {
    if (capacity < 256) {
        if (capacity > 0) buffer[0] = 0;
        return;
    }
    int length = 0;
    if (!p_error_string || p_error_string(code, buffer, &length) != 0) snprintf(buffer, capacity, "MPI error %d", code);
}

double cmpi_wtime(void) { return p_wtime(); }

// Debian: libopenblas-dev provides <cblas.h> (and the threading controls
// below), liblapacke-dev provides <lapacke.h>.
#include <cblas.h>
#include <lapacke.h>

// OpenBLAS extensions, declared here so that the shim does not depend on
// which OpenBLAS variant's cblas.h the alternatives system picked.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// The sgemm kernel OpenBLAS chose for this CPU at load time (OPENBLAS_CORETYPE
// overrides it): kernels sum in different orders, so it is part of what a
// bit-identical host run depends on.
char *openblas_get_corename(void);

#include "autograd/parallel.h"

#include "autograd/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef TAPEGRAD_OPENBLAS
extern "C" void openblas_set_num_threads(int threads);
#endif

namespace tg {

void set_num_threads(int threads) {
  if (threads < 1) fail("set_num_threads: expected at least one thread, got {}", threads);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
#ifdef TAPEGRAD_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace tg

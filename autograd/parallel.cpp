#include "autograd/parallel.h"

#include <omp.h>

#include "autograd/error.h"

#ifdef TAPEGRAD_OPENBLAS
extern "C" void openblas_set_num_threads(int threads);
#endif

namespace tg {

void set_num_threads(int threads) {
  if (threads < 1) fail("set_num_threads: expected at least one thread, got {}", threads);
  omp_set_num_threads(threads);
#ifdef TAPEGRAD_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

int num_threads() {
  return omp_get_max_threads();
}

}  // namespace tg

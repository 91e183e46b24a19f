#include "autograd/parallel.h"

#include <omp.h>

#include "autograd/error.h"

namespace tg {

void set_num_threads(int threads) {
  if (threads < 1) fail("set_num_threads: expected at least one thread, got {}", threads);
  omp_set_num_threads(threads);
}

int num_threads() {
  return omp_get_max_threads();
}

}  // namespace tg

// Any bytes as a CSV file, plain or gzip: a tg::Error or a dataset, never a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "tapegrad.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/tapegrad_fuzz_csv_" + std::to_string(getpid());
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  try {
    const tg::nn::Dataset d = tg::nn::load_csv(path);
    if (d.features.numel() != d.size() * d.features.shape()[1]) __builtin_trap();
  } catch (const tg::Error&) {
  }
  return 0;
}

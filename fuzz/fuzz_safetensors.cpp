// Any bytes as a safetensors file: a tg::Error or tensors, never a crash or a bad read.
#include <cstddef>
#include <cstdint>

#include "tapegrad.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const tg::nn::NamedTensors tensors = tg::nn::parse_safetensors(
        std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz input");
    for (const auto& [name, tensor] : tensors) {
      if (tensor.numel() > 0) (void)tensor.to_vector();  // every byte it claims is readable
    }
  } catch (const tg::Error&) {
  }
  return 0;
}

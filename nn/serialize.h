#pragma once
// Parameter files in the safetensors format: an 8-byte little-endian header length, a JSON
// header mapping each name to its dtype, shape and data offsets, then the raw little-endian
// data. Files open in Python's safetensors and PyTorch (safetensors.torch.load_file), and theirs
// open here (F32, F64 and I64 tensors).
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace tg::nn {

class Module;

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

void save_safetensors(const std::string& path, const NamedTensors& tensors);

// Reads and validates a whole file: a truncated or corrupt file, an absurd header size, offsets
// out of range, overlapping or leaving gaps, an unsupported dtype or a shape that does not match
// its bytes each raise a tg::Error naming the file and the problem.
NamedTensors load_safetensors(const std::string& path);
// The same from bytes in memory; `source` names them in errors.
NamedTensors parse_safetensors(std::span<const std::byte> bytes, const std::string& source);

// A module's named_parameters() to a file, and back.
void save(const Module& module, const std::string& path);
// Loads every parameter of the module from the file. Missing or unexpected names and shape or
// dtype mismatches raise a tg::Error listing them; nothing is changed unless everything matches.
void load(Module& module, const std::string& path);

}  // namespace tg::nn

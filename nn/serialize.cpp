#include "nn/serialize.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "nn/module.h"

namespace tg::nn {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the safetensors reader and writer assume a little-endian machine");

// A header larger than this is not a parameter file (the reference implementation uses 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i64:
      return "I64";
  }
  return "?";
}

struct Record {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin;
  std::uint64_t end;
};

[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  fail("load_safetensors: {}: {}", path, problem);
}

DType parse_dtype(const std::string& path, const std::string& name, const nlohmann::json& value) {
  if (!value.is_string()) corrupt(path, fmt::format("tensor '{}' has no dtype string", name));
  const std::string text = value.get<std::string>();
  if (text == "F32") return DType::f32;
  if (text == "F64") return DType::f64;
  if (text == "I64") return DType::i64;
  corrupt(path,
          fmt::format("tensor '{}' has dtype {}; tapegrad reads F32, F64 and I64", name, text));
}

Record parse_record(const std::string& path, const std::string& name, const nlohmann::json& entry,
                    std::uint64_t data_bytes) {
  if (!entry.is_object()) corrupt(path, fmt::format("header entry '{}' is not an object", name));
  Record r{name, parse_dtype(path, name, entry.value("dtype", nlohmann::json())), {}, 0, 0};
  const nlohmann::json& shape = entry.value("shape", nlohmann::json());
  if (!shape.is_array() || shape.size() > std::size_t(Shape::kMaxRank)) {
    corrupt(path, fmt::format("tensor '{}' needs a shape of at most {} dimensions", name,
                              Shape::kMaxRank));
  }
  std::uint64_t elements = 1;
  for (const nlohmann::json& dim : shape) {
    if (!dim.is_number_unsigned()) {
      corrupt(path, fmt::format("tensor '{}' has a shape entry that is not a non-negative integer",
                                name));
    }
    const auto d = dim.get<std::uint64_t>();
    if (d != 0 && elements > data_bytes / d) {
      corrupt(path, fmt::format("tensor '{}' has shape {} with more elements than the file holds",
                                name, shape.dump()));
    }
    elements *= d;
    r.shape.push_back(std::int64_t(d));
  }
  const nlohmann::json& offsets = entry.value("data_offsets", nlohmann::json());
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    corrupt(path, fmt::format("tensor '{}' needs data_offsets [begin, end]", name));
  }
  r.begin = offsets[0].get<std::uint64_t>();
  r.end = offsets[1].get<std::uint64_t>();
  if (r.begin > r.end || r.end > data_bytes) {
    corrupt(path, fmt::format("tensor '{}' has data offsets [{}, {}] outside the {} data bytes",
                              name, r.begin, r.end, data_bytes));
  }
  if (r.end - r.begin != elements * dtype_size(r.dtype)) {
    corrupt(path, fmt::format("tensor '{}' of shape {} and dtype {} needs {} bytes, its offsets "
                              "give {}",
                              name, r.shape.str(), safetensors_dtype(r.dtype),
                              elements * dtype_size(r.dtype), r.end - r.begin));
  }
  return r;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__" || header.contains(name)) {
      fail("save_safetensors: tensor name '{}' is empty, reserved or repeated", name);
    }
    const std::uint64_t bytes = std::uint64_t(tensor.numel()) * dtype_size(tensor.dtype());
    header[name] = {
        {"dtype", safetensors_dtype(tensor.dtype())},
        {"shape", std::vector<std::int64_t>(tensor.shape().begin(), tensor.shape().end())},
        {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // The data starts 8-byte aligned, as the reference writer pads the header with spaces.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("save_safetensors: cannot open {} for writing", path);
  const std::uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(text.data(), std::streamsize(text.size()));
  for (const auto& [name, tensor] : tensors) {
    out.write(static_cast<const char*>(tensor.raw_data()),
              std::streamsize(std::size_t(tensor.numel()) * dtype_size(tensor.dtype())));
  }
  if (!out.flush()) fail("save_safetensors: writing {} failed", path);
}

NamedTensors load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("load_safetensors: cannot open {}", path);
  std::vector<std::byte> bytes(std::size_t(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!in) fail("load_safetensors: reading {} failed", path);
  return parse_safetensors(bytes, path);
}

NamedTensors parse_safetensors(std::span<const std::byte> bytes, const std::string& path) {
  const std::uint64_t file_bytes = bytes.size();
  if (file_bytes < 8) {
    corrupt(path, fmt::format("the file has {} bytes, too few for a header length", file_bytes));
  }
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), sizeof header_bytes);
  if (header_bytes > kMaxHeaderBytes) {
    corrupt(path, fmt::format("header length {} is absurd (more than {} bytes)", header_bytes,
                              kMaxHeaderBytes));
  }
  if (header_bytes > file_bytes - 8) {
    corrupt(path, fmt::format("header length {} runs past the end of the {}-byte file (truncated?)",
                              header_bytes, file_bytes));
  }
  const std::string text(reinterpret_cast<const char*>(bytes.data()) + 8, header_bytes);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    corrupt(path, fmt::format("the header is not valid JSON ({})", e.what()));
  }
  if (!header.is_object()) corrupt(path, "the header is not a JSON object");

  const std::uint64_t data_bytes = file_bytes - 8 - header_bytes;
  std::vector<Record> records;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    records.push_back(parse_record(path, name, entry, data_bytes));
  }
  // The data must be covered exactly, in order, as the reference implementation requires.
  std::vector<const Record*> by_offset;
  for (const Record& r : records) by_offset.push_back(&r);
  std::sort(by_offset.begin(), by_offset.end(), [](const Record* a, const Record* b) {
    return a->begin < b->begin || (a->begin == b->begin && a->end < b->end);
  });
  std::uint64_t covered = 0;
  for (const Record* r : by_offset) {
    if (r->begin != covered) {
      corrupt(path,
              fmt::format("tensor '{}' starts at data byte {} but the previous tensor ends at "
                          "{} (overlapping or with a gap)",
                          r->name, r->begin, covered));
    }
    covered = r->end;
  }
  if (covered != data_bytes) {
    corrupt(path, fmt::format("the tensors cover {} of the {} data bytes", covered, data_bytes));
  }
  // Tensors come back in the order of their data, which is the order they were written in.
  const std::byte* data = bytes.data() + 8 + header_bytes;
  NamedTensors tensors;
  for (const Record* r : by_offset) {
    Tensor t = empty(r->shape, r->dtype);
    if (r->end > r->begin) std::memcpy(t.raw_data(), data + r->begin, r->end - r->begin);
    tensors.emplace_back(r->name, t);
  }
  return tensors;
}

void save(const Module& module, const std::string& path) {
  save_safetensors(path, module.named_parameters());
}

void load(Module& module, const std::string& path) {
  const NamedTensors stored = load_safetensors(path);
  std::map<std::string, const Tensor*> unused;
  for (const auto& [name, tensor] : stored) unused[name] = &tensor;
  std::vector<std::string> problems;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (const auto& [name, parameter] : module.named_parameters()) {
    const auto found = unused.find(name);
    if (found == unused.end()) {
      problems.push_back(fmt::format("missing '{}'", name));
      continue;
    }
    const Tensor& t = *found->second;
    if (!(t.shape() == parameter.shape()) || t.dtype() != parameter.dtype()) {
      problems.push_back(fmt::format("'{}' is {} {} in the file but {} {} in the module", name,
                                     dtype_name(t.dtype()), t.shape().str(),
                                     dtype_name(parameter.dtype()), parameter.shape().str()));
    }
    copies.emplace_back(parameter, &t);
    unused.erase(found);
  }
  for (const auto& [name, tensor] : unused)
    problems.push_back(fmt::format("unexpected '{}'", name));
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += (list.empty() ? "" : "; ") + p;
    fail("load: {} does not match the module: {}", path, list);
  }
  // Only now that everything matches: copy into the parameters' storage, which the module and
  // any optimizer share.
  for (auto& [parameter, tensor] : copies) {
    std::memcpy(parameter.raw_data(), tensor->raw_data(),
                std::size_t(tensor->numel()) * dtype_size(tensor->dtype()));
  }
}

}  // namespace tg::nn

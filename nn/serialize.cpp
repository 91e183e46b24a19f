#include "nn/serialize.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <utility>

#include "nn/module.h"

namespace tg::nn {
namespace {

std::string reason(int error) {
  return std::generic_category().message(error);
}

}  // namespace

namespace detail {

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

[[noreturn]] void not_regular(const std::string& path, const char* op, mode_t mode) {
  const char* kind = S_ISDIR(mode)    ? "a directory"
                     : S_ISFIFO(mode) ? "a FIFO"
                     : S_ISCHR(mode)  ? "a character device"
                     : S_ISBLK(mode)  ? "a block device"
                     : S_ISSOCK(mode) ? "a socket"
                                      : "a special file";
  fail("{}: {} is {}, not a regular file", op, path, kind);
}

}  // namespace

FileDescriptor open_regular_file(const std::string& path, const char* op) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail("{}: cannot open {}: {}", op, path, reason(errno));
  if (!S_ISREG(info.st_mode)) not_regular(path, op, info.st_mode);
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (file.get() < 0) fail("{}: cannot open {}: {}", op, path, reason(errno));
  if (::fstat(file.get(), &info) != 0) fail("{}: cannot read {}: {}", op, path, reason(errno));
  if (!S_ISREG(info.st_mode)) not_regular(path, op, info.st_mode);
  return file;
}

std::size_t read_some(const FileDescriptor& file, void* buffer, std::size_t size,
                      const std::string& path, const char* op) {
  for (;;) {
    const ssize_t count = ::read(file.get(), buffer, size);
    if (count >= 0) return std::size_t(count);
    if (errno != EINTR) fail("{}: reading {} failed: {}", op, path, reason(errno));
  }
}

}  // namespace detail

namespace {

static_assert(std::endian::native == std::endian::little,
              "the safetensors reader and writer assume a little-endian machine");

// A header larger than this is not a parameter file (the reference implementation uses 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// The format needs three levels (the header object, a tensor's entry, its shape); values
// tapegrad skips (metadata, fields it does not read) may nest a little more, never without bound.
constexpr int kMaxHeaderDepth = 8;

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i64:
      return "I64";
    case DType::b8:
      return "BOOL";
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
  if (text == "BOOL") return DType::b8;
  corrupt(path, fmt::format("tensor '{}' has dtype {}; tapegrad reads F32, F64, I64 and BOOL", name,
                            text));
}

Record parse_record(const std::string& path, const std::string& name, const nlohmann::json& entry,
                    std::uint64_t data_bytes) {
  Record r{name, parse_dtype(path, name, entry.value("dtype", nlohmann::json())), {}, 0, 0};
  const nlohmann::json& shape = entry.value("shape", nlohmann::json());
  if (!shape.is_array() || shape.size() > std::size_t(Shape::kMaxRank)) {
    corrupt(path, fmt::format("tensor '{}' needs a shape of at most {} dimensions", name,
                              Shape::kMaxRank));
  }
  // Checked as tg::Shape does, and in bytes: the non-zero dims too, since an op that reduces
  // away a zero dim ([0, 2^31, 2^31] summed over axis 0) meets their product.
  std::vector<std::int64_t> dims;
  std::int64_t bytes = std::int64_t(dtype_size(r.dtype));
  bool empty = false;
  for (const nlohmann::json& dim : shape) {
    if (!dim.is_number_unsigned() ||
        dim.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
      corrupt(path, fmt::format("tensor '{}' has a shape entry that is not a non-negative integer",
                                name));
    }
    const auto d = std::int64_t(dim.get<std::uint64_t>());
    empty = empty || d == 0;
    if (d != 0 && __builtin_mul_overflow(bytes, d, &bytes)) {
      corrupt(path, fmt::format("tensor '{}' has shape {}: its non-zero dimensions hold more than "
                                "2^63 - 1 bytes of {}",
                                name, shape.dump(), safetensors_dtype(r.dtype)));
    }
    dims.push_back(d);
  }
  r.shape = Shape(std::span<const std::int64_t>(dims.data(), dims.size()));
  const std::uint64_t needed = empty ? 0 : std::uint64_t(bytes);
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
  if (r.end - r.begin != needed) {
    corrupt(path,
            fmt::format("tensor '{}' of shape {} and dtype {} needs {} bytes, its offsets "
                        "give {}",
                        name, r.shape.str(), safetensors_dtype(r.dtype), needed, r.end - r.begin));
  }
  return r;
}

// Reads the header through the JSON parser's callback instead of into one document: containers
// are refused as they open where the format has none (so a header of nested arrays costs
// nothing), each tensor's entry is validated and dropped as it closes, its arrays hold at most
// kMaxRank numbers, and metadata and unknown fields are skipped without being stored. Memory so
// follows the number of tensors declared, never the length of the text.
std::vector<Record> parse_header(const char* begin, const char* end, const std::string& path,
                                 std::uint64_t data_bytes) {
  using Event = nlohmann::json::parse_event_t;
  std::vector<Record> records;
  std::set<std::string> names;
  std::string entry;  // the tensor whose entry is being read
  std::string field;  // the entry's field being read
  int skip_depth = -1;
  int array_items = 0;
  const auto callback = [&](int depth, Event event, nlohmann::json& parsed) {
    const bool opens = event == Event::object_start || event == Event::array_start;
    if (opens && depth >= kMaxHeaderDepth) {
      corrupt(path, fmt::format("the header nests deeper than {} levels", kMaxHeaderDepth));
    }
    // A skipped value's own events (its closing ones are not reported) come until its next
    // sibling key or the end of its parent object.
    if (skip_depth >= 0) {
      if (!(event == Event::key && depth == skip_depth) &&
          !(event == Event::object_end && depth == skip_depth - 1)) {
        return false;
      }
      skip_depth = -1;
    }
    switch (event) {
      case Event::key:
        if (depth == 1) entry = parsed.get<std::string>();
        if (depth == 2) field = parsed.get<std::string>();
        if ((depth == 1 && entry == "__metadata__") ||
            (depth == 2 && field != "dtype" && field != "shape" && field != "data_offsets")) {
          skip_depth = depth;
          return false;
        }
        return true;
      case Event::object_start:
      case Event::array_start:
      case Event::value:
        if (depth == 0 && event != Event::object_start) {
          corrupt(path, "the header is not a JSON object");
        }
        if (depth == 1 && event != Event::object_start) {
          corrupt(path, fmt::format("header entry '{}' is not an object", entry));
        }
        if ((depth == 2 && event == Event::object_start) || depth == 3) {
          if (event != Event::value) {
            corrupt(path, fmt::format("tensor '{}' has a nested {} in '{}'", entry,
                                      event == Event::object_start ? "object" : "array", field));
          }
          if (++array_items > Shape::kMaxRank) {
            corrupt(path, fmt::format("tensor '{}' has more than {} numbers in '{}'", entry,
                                      Shape::kMaxRank, field));
          }
        }
        if (event == Event::array_start) array_items = 0;
        return true;
      case Event::object_end:
        if (depth != 1) return true;
        if (!names.insert(entry).second) {
          corrupt(path, fmt::format("tensor '{}' appears twice in the header", entry));
        }
        records.push_back(parse_record(path, entry, parsed, data_bytes));
        return false;
      case Event::array_end:
        return true;
    }
    return true;
  };
  try {
    // Each entry was taken out as it closed: what remains is an empty object.
    [[maybe_unused]] const nlohmann::json rest = nlohmann::json::parse(begin, end, callback);
  } catch (const nlohmann::json::exception& e) {
    corrupt(path, fmt::format("the header is not valid JSON ({})", e.what()));
  }
  return records;
}

// The check dump() makes, asked before anything is written, to name the offending tensor.
bool valid_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// The file being written; unless committed, it is closed and its name, if it has one, removed.
struct PendingFile {
  int fd = -1;
  std::string name;
  bool committed = false;

  ~PendingFile() {
    if (fd >= 0) ::close(fd);
    if (!committed && !name.empty()) ::unlink(name.c_str());
  }
};

// A fresh "<path>.tapegrad-tmp-<pid>-<n>" made by `create` (which fails with EEXIST if it is
// taken, by a file a killed process left with a recycled pid).
template <class Create>
std::string claim_temporary_name(const std::string& path, Create create) {
  static std::atomic<unsigned> counter{0};
  for (;;) {
    std::string name = fmt::format("{}.tapegrad-tmp-{}-{}", path, ::getpid(), counter++);
    if (create(name)) return name;
    if (errno != EEXIST) {
      fail("save_safetensors: cannot create a file beside {}: {}", path, reason(errno));
    }
  }
}

// Replaces `path` by the concatenated pieces so that a reader sees the old file or the new one,
// never a part (see save_safetensors).
void replace_file(const std::string& path, std::span<const std::span<const std::byte>> pieces) {
  const std::filesystem::path target(path);
  const std::string directory = target.has_parent_path() ? target.parent_path().string() : ".";
  PendingFile file;
#ifdef O_TMPFILE
  // Unnamed until complete, so a process killed mid-write leaves nothing behind.
  file.fd = ::open(directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#endif
  if (file.fd < 0) {
    file.name = claim_temporary_name(path, [&](const std::string& name) {
      file.fd = ::open(name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
      return file.fd >= 0;
    });
  }
  for (std::span<const std::byte> piece : pieces) {
    while (!piece.empty()) {
      const ssize_t count = ::write(file.fd, piece.data(), piece.size());
      if (count < 0 && errno == EINTR) continue;
      if (count < 0) fail("save_safetensors: writing {} failed: {}", path, reason(errno));
      piece = piece.subspan(std::size_t(count));
    }
  }
  if (::fsync(file.fd) != 0) fail("save_safetensors: writing {} failed: {}", path, reason(errno));
  if (file.name.empty()) {
    const std::string self = fmt::format("/proc/self/fd/{}", file.fd);
    file.name = claim_temporary_name(path, [&](const std::string& name) {
      return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
    });
  }
  // Some file systems report a failed write only here.
  const int closed = ::close(std::exchange(file.fd, -1));
  if (closed != 0) fail("save_safetensors: writing {} failed: {}", path, reason(errno));
  if (::rename(file.name.c_str(), path.c_str()) != 0) {
    fail("save_safetensors: cannot replace {}: {}", path, reason(errno));
  }
  file.committed = true;
  // Makes the rename itself durable; best effort, as some file systems refuse to sync a
  // directory and the new file is in place either way.
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

template <class T>
std::span<const std::byte> bytes_of(const T* data, std::size_t count) {
  return {reinterpret_cast<const std::byte*>(data), count * sizeof(T)};
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__" || header.contains(name)) {
      fail("save_safetensors: {}: tensor name '{}' is empty, reserved or repeated", path, name);
    }
    if (!valid_utf8(name)) {
      fail("save_safetensors: {}: tensor name {:?} is not valid UTF-8", path, name);
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
  const std::uint64_t length = text.size();
  std::vector<std::span<const std::byte>> pieces = {bytes_of(&length, 1),
                                                    bytes_of(text.data(), text.size())};
  for (const auto& [name, tensor] : tensors) {
    pieces.push_back(bytes_of(static_cast<const char*>(tensor.raw_data()),
                              std::size_t(tensor.numel()) * dtype_size(tensor.dtype())));
  }
  replace_file(path, pieces);
}

NamedTensors load_safetensors(const std::string& path) {
  const detail::FileDescriptor file = detail::open_regular_file(path, "load_safetensors");
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) {
    fail("load_safetensors: cannot read {}: {}", path, reason(errno));
  }
  std::vector<std::byte> bytes(std::size_t(info.st_size));
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const std::size_t count = detail::read_some(file, bytes.data() + filled, bytes.size() - filled,
                                                path, "load_safetensors");
    if (count == 0) corrupt(path, "the file shrank while it was read");
    filled += count;
  }
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
  const char* text = reinterpret_cast<const char*>(bytes.data()) + 8;
  const std::uint64_t data_bytes = file_bytes - 8 - header_bytes;
  std::vector<Record> records = parse_header(text, text + header_bytes, path, data_bytes);
  // The data must be covered exactly, in order, as the reference implementation requires.
  std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  std::uint64_t covered = 0;
  for (const Record& r : records) {
    if (r.begin != covered) {
      corrupt(path,
              fmt::format("tensor '{}' starts at data byte {} but the previous tensor ends at "
                          "{} (overlapping or with a gap)",
                          r.name, r.begin, covered));
    }
    covered = r.end;
  }
  if (covered != data_bytes) {
    corrupt(path, fmt::format("the tensors cover {} of the {} data bytes", covered, data_bytes));
  }
  // Tensors come back in the order of their data, which is the order they were written in.
  const std::byte* data = bytes.data() + 8 + header_bytes;
  NamedTensors tensors;
  for (const Record& r : records) {
    // A C++ bool holding any byte but 0 or 1 is undefined behaviour: refused before it is one.
    if (r.dtype == DType::b8) {
      const auto* first = data + r.begin;
      const auto* bad =
          std::find_if(first, data + r.end, [](std::byte b) { return b > std::byte{1}; });
      if (bad != data + r.end) {
        corrupt(path, fmt::format("BOOL tensor '{}' holds byte {} at element {} (expected 0 or 1)",
                                  r.name, int(*bad), bad - first));
      }
    }
    Tensor t = empty(r.shape, r.dtype);
    if (r.end > r.begin) std::memcpy(t.raw_data(), data + r.begin, r.end - r.begin);
    tensors.emplace_back(r.name, t);
  }
  return tensors;
}

void save(const Module& module, const std::string& path) {
  save_safetensors(path, module.state_dict());
}

void load(Module& module, const std::string& path) {
  load_state_dict(module, load_safetensors(path), path);
}

void load_state_dict(Module& module, const NamedTensors& stored, const std::string& source) {
  std::map<std::string, const Tensor*> unused;
  for (const auto& [name, tensor] : stored) unused[name] = &tensor;
  std::vector<std::string> problems;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (const auto& [name, target] : module.state_dict()) {
    const auto found = unused.find(name);
    if (found == unused.end()) {
      problems.push_back(fmt::format("missing '{}'", name));
      continue;
    }
    const Tensor& t = *found->second;
    if (!(t.shape() == target.shape()) || t.dtype() != target.dtype()) {
      problems.push_back(fmt::format("'{}' is {} {} in the file but {} {} in the module", name,
                                     dtype_name(t.dtype()), t.shape().str(),
                                     dtype_name(target.dtype()), target.shape().str()));
    }
    copies.emplace_back(target, &t);
    unused.erase(found);
  }
  for (const auto& [name, tensor] : unused)
    problems.push_back(fmt::format("unexpected '{}'", name));
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += (list.empty() ? "" : "; ") + p;
    fail("load: {} does not match the module: {}", source, list);
  }
  // Only now that everything matches: copy into the parameters' and buffers' storage, which the
  // module and any optimizer share.
  for (auto& [target, tensor] : copies) {
    std::memcpy(target.raw_data(), tensor->raw_data(),
                std::size_t(tensor->numel()) * dtype_size(tensor->dtype()));
  }
}

}  // namespace tg::nn

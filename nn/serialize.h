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

// Atomic: the bytes go to an unnamed file in the target's directory (a named
// "<path>.tapegrad-tmp-<pid>-<n>" where the file system has no O_TMPFILE, which a killed process
// may leave behind), are flushed to disk, and only then replace the target. A failure (disk
// full, file-size limit) leaves the previous file intact and raises a tg::Error with the
// system's reason. Names must be non-empty, unique, valid UTF-8 and not "__metadata__".
void save_safetensors(const std::string& path, const NamedTensors& tensors);

// Reads and validates a whole file: a truncated or corrupt file, a header over 100 MB or nested
// deeper than the format needs, offsets out of range, overlapping or leaving gaps, an unsupported
// dtype, a shape whose size overflows or that does not match its bytes, or a path that is not a
// regular file (a directory, FIFO or device) each raise a tg::Error naming the file and the
// problem. The header's memory is bounded by the tensors it declares, not by its text.
NamedTensors load_safetensors(const std::string& path);
// The same from bytes in memory; `source` names them in errors.
NamedTensors parse_safetensors(std::span<const std::byte> bytes, const std::string& source);

// A module's state_dict() (parameters and buffers, under PyTorch's names) to a file, and back.
void save(const Module& module, const std::string& path);
// Loads every parameter and buffer of the module from the file. Missing or unexpected names and
// shape or dtype mismatches raise a tg::Error listing them; nothing is changed unless everything
// matches.
void load(Module& module, const std::string& path);
// The same from tensors in memory (e.g. a checkpoint's model part); `source` names them in errors.
void load_state_dict(Module& module, const NamedTensors& state,
                     const std::string& source = "the state_dict");

namespace detail {

// Owns a file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor& operator=(FileDescriptor&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens `path` for reading only if it is a regular file: a directory, FIFO or device (which
// would block or never end) raises a tg::Error naming `op` and the path. A FIFO is refused
// before it is opened, and the open does not block should one replace the file in between.
FileDescriptor open_regular_file(const std::string& path, const char* op);

// Up to `size` bytes into `buffer`, 0 only at the end of the file; a read error raises a
// tg::Error naming `op`, the path and the system's reason.
std::size_t read_some(const FileDescriptor& file, void* buffer, std::size_t size,
                      const std::string& path, const char* op);

}  // namespace detail
}  // namespace tg::nn

#pragma once
// The tape: an ordered record of op entries. Recording order is a topological order, so backward
// is one reverse loop over the entries (autograd/backward.h): no recursion, no graph search.
#include <cstddef>
#include <cstdint>
#include <source_location>
#include <vector>

#include "autograd/backward.h"
#include "autograd/custom_op.h"
#include "autograd/op.h"
#include "autograd/tensor.h"

namespace tg {

namespace detail {
class TapeCore;
}  // namespace detail

// One recorded op, as seen from outside (printing, pictures, localisation).
struct TapeEntryView {
  std::int64_t index;
  const char* op;
  const char* formula;
  std::source_location location;
  std::vector<Tensor> inputs;
  // For each input, the index of the entry that produced it on this tape, or -1 (a leaf or a
  // constant).
  std::vector<std::int64_t> input_entries;
  Tensor output;
  std::vector<Tensor> saved;
  bool freed;  // residuals released by a backward without retain_graph
};

// RAII recording scope: while a Tape lives, ops on this thread record into it. Without one, a
// thread-local default tape records, and reclaims its entries once no tensor it produced is
// referenced any more, so a PyTorch-style training loop keeps its memory flat.
class Tape {
 public:
  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // The tape ops record into now: the innermost live Tape scope, else the default tape.
  static Tape& current();

  std::size_t size() const;
  // Memory held for entries, in use or kept for the next graph. After a graph far larger than
  // usual, the next one of ordinary size gives the surplus back.
  std::size_t reserved_bytes() const;
  // Entries are indexed from 0 in recording order; the default tape renumbers the entries it
  // keeps when it reclaims the others.
  TapeEntryView entry(std::int64_t index) const;
  std::vector<TapeEntryView> entries() const;
  // The entry's op with its recorded parameters, as a function of new inputs: gradcheck uses it
  // to check each entry on its own.
  TensorFunction entry_function(std::int64_t index) const;
  // The index of the entry that produced `tensor` on this tape, or -1.
  std::int64_t index_of(const Tensor& tensor) const;
  // Drops every entry; tensors recorded so far can no longer be backpropagated.
  void clear();

  detail::TapeCore& core() const { return *core_; }

 private:
  struct DefaultTag {};
  explicit Tape(DefaultTag);
  friend Tape& default_tape();

  detail::TapeCore* core_;
  bool scoped_;
};

Tape& default_tape();

}  // namespace tg

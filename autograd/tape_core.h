#pragma once
// Private: the tape's record, shared by the tape (recording, reclaiming), the backward loop and
// the inspection tools. Users see it only through Tape.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/tape.h"

namespace tg::detail {

// Where the gradient of an entry's input goes: the ref index of the output that produced it on
// this tape, or one of these.
constexpr std::int64_t kNoRoute = -1;    // a constant: no gradient
constexpr std::int64_t kLeafRoute = -2;  // a leaf of this tape: accumulate per pass

struct Ref {
  std::shared_ptr<TensorImpl> impl;
  std::int64_t route;
  std::int64_t route_entry;  // the entry that produced the input, when route >= 0
  // The storage's write count when the entry was recorded: a rule may read any input, the output
  // and the residuals, so backward refuses to run it on values written since.
  std::uint64_t version;
};

// Refs of an entry are contiguous: its inputs, its output, then its saved residuals.
struct Entry {
  const OpBase* op;
  alignas(8) std::array<std::byte, kAttrCapacity> attrs;
  std::int64_t first_ref;
  std::uint32_t num_inputs;
  std::uint32_t num_saved;
  bool freed;
  std::source_location location;

  std::int64_t output_ref() const { return first_ref + num_inputs; }
  std::int64_t end_ref() const { return output_ref() + 1 + num_saved; }
};

// The default tape reclaims unreferenced entries once it has grown past this many since the
// last reclamation (and by doubling after that), which bounds its memory in loops that keep a
// handle from one step to the next.
constexpr std::size_t kMinEntriesBeforeCompaction = 256;

// Gives a vector's memory back when it holds over four times what the graphs it now serves need,
// so that one huge graph (a million-op chain) does not pin its capacity for the thread's lifetime,
// while a loop over graphs of one size keeps reusing its storage.
constexpr std::size_t kCapacityKeptAnyway = 4096;
template <class T>
void trim_capacity(std::vector<T>& v, std::size_t expected) {
  const std::size_t keep = std::max({v.size(), expected, kCapacityKeptAnyway});
  if (v.capacity() <= 4 * keep) return;
  std::vector<T> smaller;
  smaller.reserve(keep);
  std::move(v.begin(), v.end(), std::back_inserter(smaller));
  v.swap(smaller);
}

// Empties a working vector, keeping the capacity the size it just had calls for.
template <class T>
void clear_and_trim(std::vector<T>& v) {
  const std::size_t used = v.size();
  v.clear();
  trim_capacity(v, used);
}

class TapeCore final : public Recorder {
 public:
  Tape* owner = nullptr;
  // A tape and the tensors it records belong to one thread; set once, read from any.
  const std::thread::id thread = std::this_thread::get_id();
  // The owning Tape, plus every impl linked to this core; an impl may die on any thread.
  std::atomic<int> refcount = 1;
  bool alive = true;  // written under elsewhere_mutex, which other threads read it under
  bool auto_reclaim = false;
  std::uint64_t generation = 0;
  // Indices into these are what links hold; they restart with every generation.
  std::vector<Entry> entries;
  std::vector<Ref> refs;
  std::int64_t live_outputs = 0;  // linked impls of this generation with a handle
  int busy = 0;                   // backward passes and reclamation in progress
  std::size_t compact_at = kMinEntriesBeforeCompaction;
  // Handle counts changed on other threads (+1 taken, -1 dropped), applied here at the next op.
  std::mutex elsewhere_mutex;
  std::vector<std::pair<std::shared_ptr<TensorImpl>, int>> elsewhere;
  std::atomic<bool> has_elsewhere = false;

  Entry& entry(std::int64_t index) { return entries[std::size_t(index)]; }
  Ref& ref(std::int64_t index) { return refs[std::size_t(index)]; }
  bool holds(const Link& link) const {
    return link.core == this && alive && link.generation == generation;
  }
  // The entry that produced an input, for pictures and traces: -1 for a leaf or a constant.
  std::int64_t input_entry(const Ref& ref) const { return ref.route >= 0 ? ref.route_entry : -1; }

  void record(const OpBase& op, const void* attrs, std::size_t attrs_size,
              std::span<const Tensor* const> inputs, Tensor& output, std::span<const Tensor> saved,
              const std::source_location& location);
  void free_entry(Entry& entry);
  void clear();
  void release();  // drops one reference; the last one deletes the core

  void first_handle(TensorImpl& impl) override;
  void last_handle(TensorImpl& impl) override;
  void handle_elsewhere(std::shared_ptr<TensorImpl> impl, int change) override;
  void unlink() override { release(); }
  void maybe_reclaim() {
    if (auto_reclaim && busy == 0 && live_outputs == 0 && !entries.empty()) clear();
  }

 private:
  std::int64_t route_of(const Tensor& input, const OpBase& op, std::size_t position) const;
  void compact();
  std::vector<std::uint8_t>& mark_needed();
  void apply_elsewhere();
};

inline TapeCore& core_of(const Link& link) {
  return static_cast<TapeCore&>(*link.core);
}

// The core ops record into on this thread: the innermost Tape scope, else the default tape.
TapeCore& recording_core();

// Makes a core the recording target for a scope (a Tape, or a backward pass recording its rules
// on the tape of the tensor being differentiated).
class RecordingScope {
 public:
  explicit RecordingScope(TapeCore* core);
  ~RecordingScope();
  RecordingScope(const RecordingScope&) = delete;
  RecordingScope& operator=(const RecordingScope&) = delete;
};

// Holds off reclamation while a backward pass reads the tape.
class BusyScope {
 public:
  explicit BusyScope(TapeCore& core) : core_(core) { ++core_.busy; }
  ~BusyScope();
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  TapeCore& core_;
};

[[noreturn]] void fail_other_thread(const char* what);
[[noreturn]] void fail_graph_gone(const char* what);

// Trace lines format shapes, which costs more than recording an entry: only when they show.
bool tracing();

}  // namespace tg::detail

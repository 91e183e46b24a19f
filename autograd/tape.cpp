#include "autograd/tape.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "autograd/log.h"
#include "ops/ops.h"

namespace tg {

namespace detail {

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

struct TapeCore {
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

  std::int64_t route_of(const Tensor& input, const OpBase& op, std::size_t position) const;
  void record(const OpBase& op, const void* attrs, std::size_t attrs_size,
              std::span<const Tensor* const> inputs, Tensor& output, std::span<const Tensor> saved,
              const std::source_location& location);
  void free_entry(Entry& entry);
  void clear();
  void compact();
  void maybe_reclaim() {
    if (auto_reclaim && busy == 0 && live_outputs == 0 && !entries.empty()) clear();
  }
  void apply_elsewhere();
};

// Trace lines format shapes, which costs more than recording an entry: only when they show.
bool tracing() {
  static spdlog::logger& log = logger();
  return log.should_log(spdlog::level::trace);
}

void release_core(TapeCore* core) {
  if (core->refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) delete core;
}

namespace {

struct ThreadState {
  bool grad_enabled = true;
  bool detect_anomaly = false;
  RuleInterceptor* interceptor = nullptr;
  BackwardObserver* observer = nullptr;
  std::vector<TapeCore*> recording;  // innermost last
};

thread_local ThreadState thread_state;

TapeCore& current_core() {
  return thread_state.recording.empty() ? default_tape().core() : *thread_state.recording.back();
}

// Makes a core the recording target for a scope (a Tape, or a backward pass recording its rules
// on the tape of the tensor being differentiated).
class RecordingScope {
 public:
  explicit RecordingScope(TapeCore* core) { thread_state.recording.push_back(core); }
  ~RecordingScope() { thread_state.recording.pop_back(); }
  RecordingScope(const RecordingScope&) = delete;
  RecordingScope& operator=(const RecordingScope&) = delete;
};

class BusyScope {
 public:
  explicit BusyScope(TapeCore& core) : core_(core) { ++core_.busy; }
  ~BusyScope() {
    --core_.busy;
    core_.maybe_reclaim();
  }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  TapeCore& core_;
};

[[noreturn]] void fail_other_thread(const char* what) {
  fail(
      "{}: the tensor was recorded on another thread's tape; a tensor that takes part in a graph "
      "belongs to the thread that recorded it (detach() it to share its value)",
      what);
}

[[noreturn]] void fail_graph_gone(const char* what) {
  fail(
      "{}: the graph behind this tensor is gone: it was freed by an earlier backward without "
      "retain_graph, or its tape was cleared or destroyed (run the forward again, or pass "
      "retain_graph = true to the first backward)",
      what);
}

}  // namespace

std::int64_t TapeCore::route_of(const Tensor& input, const OpBase& op, std::size_t position) const {
  if (!input.requires_grad()) return kNoRoute;
  const Link& link = input.impl()->link;
  if (link.core == nullptr) return kLeafRoute;
  if (link.core->thread != thread) fail_other_thread(op.name);
  if (holds(link)) return link.ref;
  if (link.core != this && link.core->alive && link.generation == link.core->generation) {
    return kLeafRoute;  // recorded on another live tape: gradients stop at the tape boundary
  }
  fail(
      "{}: input {} was recorded on a tape that is gone or was cleared; detach() it to use it "
      "as a constant",
      op.name, position);
}

void TapeCore::record(const OpBase& op, const void* attrs, std::size_t attrs_size,
                      std::span<const Tensor* const> inputs, Tensor& output,
                      std::span<const Tensor> saved, const std::source_location& location) {
  if (has_elsewhere.load(std::memory_order_acquire)) [[unlikely]]
    apply_elsewhere();
  // Compaction renumbers links, so it comes before the routes are read.
  if (auto_reclaim && busy == 0 && entries.size() >= compact_at) compact();
  // Routes before any change: route_of may throw, and the tape must stay unchanged when it does.
  thread_local std::vector<std::int64_t> routes;
  routes.clear();
  for (std::size_t i = 0; i < inputs.size(); ++i) routes.push_back(route_of(*inputs[i], op, i));

  const auto index = std::int64_t(entries.size());
  Entry& entry = entries.emplace_back();
  entry.op = &op;
  if (attrs_size > 0) std::memcpy(entry.attrs.data(), attrs, attrs_size);
  entry.first_ref = std::int64_t(refs.size());
  entry.num_inputs = std::uint32_t(inputs.size());
  entry.num_saved = std::uint32_t(saved.size());
  entry.freed = false;
  entry.location = location;

  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::int64_t route = routes[i];
    refs.push_back({inputs[i]->impl(), route, route >= 0 ? inputs[i]->impl()->link.entry : -1,
                    inputs[i]->impl()->storage->version});
  }
  TensorImpl& impl = *output.impl();
  impl.requires_grad = true;
  impl.link = {this, thread, generation, index, entry.output_ref()};
  impl.handles = int(output.impl().use_count());
  ++live_outputs;
  refcount.fetch_add(1, std::memory_order_relaxed);
  refs.push_back({output.impl(), kNoRoute, -1, impl.storage->version});
  for (const Tensor& residual : saved) {
    refs.push_back({residual.impl(), kNoRoute, -1, residual.impl()->storage->version});
  }

  if (tracing()) {
    SPDLOG_LOGGER_TRACE(&logger(), "record #{} {} -> {} {}", index, op.name, impl.shape.str(),
                        dtype_name(impl.dtype));
  }
}

// Only the residuals go: the inputs and the output stay, so the graph's structure (edges, shapes,
// values) can still be printed and drawn after backward. The memory that backward frees is the
// residuals'; the outputs are freed with the tape, or when the default tape reclaims them.
void TapeCore::free_entry(Entry& entry) {
  for (std::int64_t r = entry.output_ref() + 1; r < entry.end_ref(); ++r) ref(r).impl.reset();
  entry.freed = true;
}

void TapeCore::clear() {
  ++busy;
  // A new generation first: impls released below then see that they no longer count.
  ++generation;
  live_outputs = 0;
  // The next graph is likely the size of this one: compacting before it has grown past twice
  // that would only copy entries that are all still needed.
  compact_at = std::max(kMinEntriesBeforeCompaction, 2 * entries.size());
  clear_and_trim(entries);
  clear_and_trim(refs);
  --busy;
}

void TapeCore::compact() {
  ++busy;
  // An entry is needed while a handle to its output lives, or a needed entry takes its output:
  // one reverse sweep marks them. A freed entry is kept only while something needs it, so that
  // backpropagating into it still reports that it was freed.
  thread_local std::vector<std::uint8_t> needed;
  needed.assign(entries.size(), 0);
  for (std::size_t i = entries.size(); i-- > 0;) {
    const Entry& e = entries[i];
    const Ref& out = refs[std::size_t(e.output_ref())];
    if (!needed[i] && !(out.impl && out.impl->handles > 0)) continue;
    needed[i] = 1;
    if (e.freed) continue;
    for (std::int64_t r = e.first_ref; r < e.output_ref(); ++r) {
      if (refs[std::size_t(r)].route >= 0)
        needed[std::size_t(refs[std::size_t(r)].route_entry)] = 1;
    }
  }
  // The needed entries move, in place and in order, to a new generation with new indices; links
  // into the old one (only tensors nobody can backpropagate through any more) go stale.
  ++generation;
  live_outputs = 0;
  thread_local std::vector<std::int64_t> new_ref;
  thread_local std::vector<std::int64_t> new_entry;
  new_ref.assign(refs.size(), -1);
  new_entry.assign(entries.size(), -1);
  std::size_t kept_entries = 0;
  std::size_t kept_refs = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!needed[i]) continue;
    Entry e = entries[i];
    new_entry[i] = std::int64_t(kept_entries);
    const auto first = std::int64_t(kept_refs);
    for (std::int64_t r = e.first_ref; r < e.end_ref(); ++r) {
      Ref ref = std::move(refs[std::size_t(r)]);
      if (ref.route >= 0) {
        ref.route = new_ref[std::size_t(ref.route)];
        ref.route_entry = new_entry[std::size_t(ref.route_entry)];
      }
      new_ref[std::size_t(r)] = std::int64_t(kept_refs);
      refs[kept_refs++] = std::move(ref);
    }
    e.first_ref = first;
    if (TensorImpl* out = refs[std::size_t(e.output_ref())].impl.get()) {
      // Not core or thread: other threads holding a handle read those.
      out->link.generation = generation;
      out->link.entry = new_entry[i];
      out->link.ref = e.output_ref();
      if (out->handles > 0) ++live_outputs;
    }
    entries[kept_entries++] = e;
  }
  entries.resize(kept_entries);
  refs.resize(kept_refs);
  compact_at = std::max(kMinEntriesBeforeCompaction, 2 * entries.size());
  trim_capacity(entries, compact_at);
  trim_capacity(refs, 2 * refs.size());
  clear_and_trim(needed);
  clear_and_trim(new_ref);
  clear_and_trim(new_entry);
  --busy;
}

TensorImpl::~TensorImpl() {
  if (link.core) release_core(link.core);
}

void on_first_handle(TensorImpl& impl) {
  TapeCore& core = *impl.link.core;
  if (core.holds(impl.link)) ++core.live_outputs;
}

void on_last_handle(TensorImpl& impl) {
  TapeCore& core = *impl.link.core;
  if (core.holds(impl.link) && --core.live_outputs == 0) core.maybe_reclaim();
}

void TapeCore::apply_elsewhere() {
  std::vector<std::pair<std::shared_ptr<TensorImpl>, int>> pending;
  {
    const std::lock_guard lock(elsewhere_mutex);
    pending.swap(elsewhere);
    has_elsewhere.store(false, std::memory_order_relaxed);
  }
  for (auto& [impl, change] : pending) {
    if (change > 0) {
      if (impl->handles++ == 0) on_first_handle(*impl);
    } else if (--impl->handles == 0) {
      on_last_handle(*impl);
    }
  }
}

void acquire_elsewhere(const std::shared_ptr<TensorImpl>& impl) {
  TapeCore& core = *impl->link.core;
  const std::lock_guard lock(core.elsewhere_mutex);
  // A gone tape counts no handles.
  if (!core.alive) return;
  core.elsewhere.emplace_back(impl, +1);
  core.has_elsewhere.store(true, std::memory_order_release);
}

void release_elsewhere(std::shared_ptr<TensorImpl> impl) {
  TapeCore& core = *impl->link.core;
  {
    const std::lock_guard lock(core.elsewhere_mutex);
    if (core.alive) {
      try {
        core.elsewhere.emplace_back(std::move(impl), -1);
        core.has_elsewhere.store(true, std::memory_order_release);
        return;
      } catch (const std::bad_alloc&) {
        // Out of memory: the tape keeps counting this handle, so it reclaims only when cleared.
      }
    }
  }
  // The impl may be the core's last reference: it goes after the lock is released.
}

void set_rule_interceptor(RuleInterceptor* interceptor) {
  thread_state.interceptor = interceptor;
}

BackwardObserver* set_backward_observer(BackwardObserver* observer) {
  return std::exchange(thread_state.observer, observer);
}

// The flat index of the first NaN or infinity, or -1.
std::int64_t first_non_finite(const Tensor& t) {
  if (!is_floating(t.dtype())) return -1;
  return dispatch_floating(t.dtype(), "anomaly", [&]<class T>() -> std::int64_t {
    const T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      if (!std::isfinite(p[i])) return i;
    }
    return -1;
  });
}

// "nan at [0, 2]": the value and where it is.
std::string describe_element(const Tensor& t, std::int64_t flat) {
  return fmt::format("{} at [{}]", t.to_vector()[std::size_t(flat)],
                     fmt::join(unravel_index(flat, t.shape()), ", "));
}

std::string input_ranges(std::span<const Tensor* const> inputs) {
  std::string text;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = *inputs[i];
    std::string range = "empty";
    if (x.numel() > 0) {
      std::vector<double> v = x.to_vector();
      // NaN compares false with everything, so a range taken over it would hide it.
      const auto non_finite =
          std::partition(v.begin(), v.end(), [](double e) { return std::isfinite(e); });
      const auto count = std::distance(non_finite, v.end());
      if (non_finite != v.begin()) {
        const auto [low, high] = std::minmax_element(v.begin(), non_finite);
        range = fmt::format("[{:g}, {:g}]", *low, *high);
      } else {
        range = "no finite value";
      }
      if (count > 0) range += fmt::format(" and {} non-finite ({})", count, *non_finite);
    }
    text += fmt::format("{}input {} {} {} in {}", i == 0 ? "inputs: " : "; ", i,
                        dtype_name(x.dtype()), x.shape().str(), range);
  }
  return text;
}

[[noreturn]] void fail_anomaly(const char* direction, const OpBase& op, const std::string& entry,
                               const std::source_location& location, const std::string& what,
                               std::span<const Tensor* const> inputs) {
  fail("anomaly: {} of '{}' ({}, {}:{}) produced {}; {}", direction, op.name, entry,
       location.file_name(), location.line(), what, input_ranges(inputs));
}

const char* producer_name(const TensorImpl& impl) {
  if (impl.link.core == nullptr || impl.link.thread != std::this_thread::get_id() ||
      !impl.link.core->holds(impl.link)) {
    return nullptr;
  }
  return impl.link.core->entry(impl.link.entry).op->name;
}

Tensor apply_op(const OpBase& op, std::span<const Tensor* const> inputs, const void* attrs,
                std::size_t attrs_size, const std::source_location& location) {
  bool any_requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]->defined()) fail("{}: input {} is an undefined tensor", op.name, i);
    any_requires_grad = any_requires_grad || inputs[i]->requires_grad();
  }
  const bool recording = any_requires_grad && thread_state.grad_enabled;
  if (thread_state.detect_anomaly) [[unlikely]] {
    // An op's non-finite output is reported where it is produced, so a non-finite input came from
    // a leaf or a constant: say so at the first op that receives it, rather than blame that op.
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const std::int64_t bad = first_non_finite(*inputs[i]);
      if (bad < 0) continue;
      fail(
          "anomaly: forward of '{}' ({}:{}): input {} is already non-finite ({}): it comes from a "
          "leaf or a constant, not from a recorded op; {}",
          op.name, location.file_name(), location.line(), i, describe_element(*inputs[i], bad),
          input_ranges(inputs));
    }
  }
  ForwardContext ctx(inputs, recording, op.name, location);
  Tensor output;
  {
    GradModeGuard forward_is_not_recorded(false);
    output = op.forward(op, ctx, attrs);
  }
  if (!output.defined()) {
    fail("{} ({}:{}): the forward returned an undefined tensor", op.name, location.file_name(),
         location.line());
  }
  if (thread_state.detect_anomaly) [[unlikely]] {
    const std::int64_t bad = first_non_finite(output);
    if (bad >= 0) {
      const std::string entry =
          recording ? fmt::format("tape entry {}", current_core().entries.size()) : "not recorded";
      fail_anomaly("forward", op, entry, location,
                   fmt::format("{} in its output", describe_element(output, bad)), inputs);
    }
  }
  if (!recording) return output;
  // The output must be a new impl: the link is per impl, and an input keeps its own.
  if (output.impl()->link.core != nullptr || output.impl()->requires_grad ||
      std::any_of(inputs.begin(), inputs.end(),
                  [&](const Tensor* in) { return in->impl() == output.impl(); })) {
    output = output.detach();
  }
  current_core().record(op, attrs, attrs_size, inputs, output, ctx.saved(), location);
  return output;
}

}  // namespace detail

// ---- grad mode ----

bool grad_enabled() {
  return detail::thread_state.grad_enabled;
}

void detect_anomaly(bool on) {
  detail::thread_state.detect_anomaly = on;
}
bool anomaly_detection_enabled() {
  return detail::thread_state.detect_anomaly;
}

AnomalyGuard::AnomalyGuard(bool on) : previous_(detail::thread_state.detect_anomaly) {
  detail::thread_state.detect_anomaly = on;
}
AnomalyGuard::~AnomalyGuard() {
  detail::thread_state.detect_anomaly = previous_;
}

GradModeGuard::GradModeGuard(bool enabled) : previous_(detail::thread_state.grad_enabled) {
  detail::thread_state.grad_enabled = enabled;
}

GradModeGuard::~GradModeGuard() {
  detail::thread_state.grad_enabled = previous_;
}

void ForwardContext::save(const Tensor& residual, Residual kind) {
  if (!recording_) return;
  if (!residual.defined()) {
    fail("{} ({}:{}): ctx.save() of an undefined tensor", op_, location_.file_name(),
         location_.line());
  }
  if (num_saved_ == kMaxSaved) {
    fail("{} ({}:{}): ctx.save(): at most {} residuals per op", op_, location_.file_name(),
         location_.line(), kMaxSaved);
  }
  kinds_[num_saved_] = kind;
  saved_[num_saved_++] = residual;
}

namespace detail {
void fail_context_index(const char* op, const std::source_location& location, const char* what,
                        std::size_t index, std::size_t size) {
  fail("{} ({}:{}): ctx.{}({}) is out of range: the op has {} of them", op, location.file_name(),
       location.line(), what, index, size);
}
}  // namespace detail

// ---- Tape ----

Tape::Tape() : core_(new detail::TapeCore), scoped_(true) {
  core_->owner = this;
  detail::thread_state.recording.push_back(core_);
}

Tape::Tape(DefaultTag) : core_(new detail::TapeCore), scoped_(false) {
  core_->owner = this;
  core_->auto_reclaim = true;
}

Tape::~Tape() {
  if (scoped_) {
    auto& stack = detail::thread_state.recording;
    // Scopes end in reverse order unless a Tape was heap-allocated; find it either way.
    auto it = std::find(stack.rbegin(), stack.rend(), core_);
    if (it != stack.rend()) stack.erase(std::next(it).base());
  }
  core_->clear();
  // Dropped after the core is released: each holds its own reference to it.
  std::vector<std::pair<std::shared_ptr<detail::TensorImpl>, int>> pending;
  {
    const std::lock_guard lock(core_->elsewhere_mutex);
    core_->alive = false;
    pending.swap(core_->elsewhere);
  }
  core_->owner = nullptr;
  detail::release_core(core_);
}

Tape& default_tape() {
  thread_local Tape tape{Tape::DefaultTag{}};
  return tape;
}

Tape& Tape::current() {
  Tape* owner = detail::current_core().owner;
  return owner ? *owner : default_tape();
}

std::size_t Tape::size() const {
  return core_->entries.size();
}
std::size_t Tape::reserved_bytes() const {
  return core_->entries.capacity() * sizeof(detail::Entry) +
         core_->refs.capacity() * sizeof(detail::Ref);
}
void Tape::clear() {
  core_->clear();
}

namespace {
void check_entry_index(const detail::TapeCore& core, std::int64_t index) {
  if (index < 0 || index >= std::int64_t(core.entries.size())) {
    fail("Tape::entry: index {} is not on the tape, which holds {} entries", index,
         core.entries.size());
  }
}
}  // namespace

TapeEntryView Tape::entry(std::int64_t index) const {
  detail::TapeCore& core = *core_;
  check_entry_index(core, index);
  const detail::Entry& e = core.entry(index);
  TapeEntryView view{index, e.op->name, e.op->formula, e.location, {}, {}, {}, {}, e.freed};
  for (std::int64_t r = e.first_ref; r < e.output_ref(); ++r) {
    view.inputs.emplace_back(core.ref(r).impl);
    view.input_entries.push_back(core.ref(r).route >= 0 ? core.ref(r).route_entry : -1);
  }
  view.output = Tensor(core.ref(e.output_ref()).impl);
  for (std::int64_t r = e.output_ref() + 1; r < e.end_ref(); ++r) {
    view.saved.emplace_back(core.ref(r).impl);
  }
  return view;
}

Function Tape::entry_function(std::int64_t index) const {
  check_entry_index(*core_, index);
  const detail::Entry& e = core_->entry(index);
  return [op = e.op, attrs = e.attrs, location = e.location](const std::vector<Tensor>& inputs) {
    std::vector<const Tensor*> pointers;
    for (const Tensor& input : inputs) pointers.push_back(&input);
    return detail::apply_op(*op, pointers, attrs.data(), attrs.size(), location);
  };
}

std::int64_t Tape::index_of(const Tensor& tensor) const {
  if (!tensor.defined() || !core_->holds(tensor.impl()->link)) return -1;
  return tensor.impl()->link.entry;
}

Tensor CustomOp::apply(const std::vector<Tensor>& inputs, SourceLocation location) const {
  std::vector<const Tensor*> pointers;
  for (const Tensor& input : inputs) pointers.push_back(&input);
  return detail::apply_op(*this, pointers, nullptr, 0, location);
}

std::vector<TapeEntryView> Tape::entries() const {
  std::vector<TapeEntryView> views;
  for (std::int64_t i = 0; i < std::int64_t(core_->entries.size()); ++i) views.push_back(entry(i));
  return views;
}

// ---- backward ----

namespace {

void accumulate(Tensor& sum, Tensor grad) {
  sum = sum.defined() ? add(sum, grad) : std::move(grad);
}

// Checks a rule's gradient against its input and sums a broadcast gradient back to the input's
// shape, so that no rule has to.
Tensor conform(Tensor grad, const Tensor& input, const detail::OpBase& op, std::int64_t entry,
               std::size_t position) {
  if (grad.dtype() != input.dtype()) {
    fail("backward of '{}' (entry {}) returned a {} gradient for input {}, which is {}", op.name,
         entry, dtype_name(grad.dtype()), position, dtype_name(input.dtype()));
  }
  if (grad.shape() == input.shape()) return grad;
  if (!broadcastable_to(input.shape(), grad.shape())) {
    fail("backward of '{}' (entry {}) returned a gradient of shape {} for input {} of shape {}",
         op.name, entry, grad.shape().str(), position, input.shape().str());
  }
  return sum_to(grad, input.shape());
}

void check_gradient(const Tensor& g, std::size_t position, const detail::OpBase& op,
                    std::int64_t index, const std::source_location& location,
                    std::span<const Tensor> inputs) {
  const std::int64_t bad = detail::first_non_finite(g);
  if (bad < 0) return;
  std::vector<const Tensor*> pointers;
  for (const Tensor& t : inputs) pointers.push_back(&t);
  detail::fail_anomaly(
      "backward", op, fmt::format("tape entry {}", index), location,
      fmt::format("{} in the gradient for input {}", detail::describe_element(g, bad), position),
      pointers);
}

void observe(detail::BackwardObserver& observer, detail::TapeCore& core, const detail::Entry& entry,
             std::int64_t index, const Tensor& grad_output, std::span<const Tensor> tensors,
             std::span<const Tensor> grad_inputs) {
  BackwardStep step{index, entry.op->name, entry.op->formula, entry.location, grad_output, {}, {},
                    {}};
  for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
    const detail::Ref& ref = core.ref(entry.first_ref + i);
    step.inputs.push_back(tensors[i]);
    step.input_entries.push_back(ref.route >= 0 ? ref.route_entry : -1);
    step.grad_inputs.push_back(grad_inputs[i]);
  }
  observer.on_step(step);
}

// PyTorch's saved-variable check: a tensor an entry keeps for its rule must hold the values it
// had when the entry was recorded.
void check_versions(const detail::TapeCore& core, const detail::Entry& entry, std::int64_t index) {
  for (std::int64_t r = entry.first_ref; r < entry.end_ref(); ++r) {
    const detail::Ref& ref = core.refs[std::size_t(r)];
    const std::uint64_t now = ref.impl->storage->version;
    if (now == ref.version) continue;
    const std::int64_t k = r - entry.first_ref;
    const std::string which =
        k < std::int64_t(entry.num_inputs) ? fmt::format("input {}", k)
        : k == std::int64_t(entry.num_inputs)
            ? std::string("its output")
            : fmt::format("saved residual {}", k - std::int64_t(entry.num_inputs) - 1);
    fail(
        "backward of '{}' (entry {}, {}:{}): {} ({} {}), which its rule needs, was modified in "
        "place after the op was recorded (version {} then, {} now: written through data<T>(), "
        "an optimizer step or another in-place update); recompute the forward after changing it, "
        "or change a copy",
        entry.op->name, index, entry.location.file_name(), entry.location.line(), which,
        dtype_name(ref.impl->dtype), ref.impl->shape.str(), ref.version, now);
  }
}

// Runs a user op's forward again with grad mode on (create_graph is recording), so that the
// residuals the rule reads are functions of the inputs on the graph rather than constants.
void rebuild_residuals(const detail::Entry& entry, std::int64_t index, std::vector<Tensor>& tensors,
                       std::span<const std::uint8_t> needs) {
  const detail::OpBase& op = *entry.op;
  std::vector<const Tensor*> inputs;
  for (std::uint32_t i = 0; i < entry.num_inputs; ++i) inputs.push_back(&tensors[i]);
  ForwardContext ctx(inputs, true, op.name, entry.location);
  op.forward(op, ctx, entry.attrs.data());
  if (ctx.saved().size() != entry.num_saved) {
    fail(
        "backward of '{}' (entry {}, {}:{}): run again for create_graph, its forward saved {} "
        "residuals instead of {}",
        op.name, index, entry.location.file_name(), entry.location.line(), ctx.saved().size(),
        entry.num_saved);
  }
  const bool any_needed = std::any_of(needs.begin(), needs.end(), [](auto n) { return n != 0; });
  for (std::uint32_t k = 0; k < entry.num_saved; ++k) {
    const Tensor& again = ctx.saved()[k];
    if (ctx.residual_kind(k) == Residual::constant || !is_floating(again.dtype())) continue;
    const bool is_input = std::any_of(inputs.begin(), inputs.end(),
                                      [&](const Tensor* in) { return in->impl() == again.impl(); });
    if (any_needed && !again.requires_grad() && !is_input) {
      fail(
          "backward of '{}' (entry {}, {}:{}) under create_graph: saved residual {} is not a "
          "function of the op's inputs on the graph (computed outside tapegrad ops), so its "
          "derivative would be lost: compute it with tapegrad ops in the forward, recompute it in "
          "the rule from ctx.input(), save it as tg::Residual::constant if its derivative is zero "
          "by design, or declare the op Differentiability::once",
          op.name, index, entry.location.file_name(), entry.location.line(), k);
    }
    tensors[entry.num_inputs + 1 + k] = again;
  }
}

struct LeafGrad {
  std::shared_ptr<detail::TensorImpl> leaf;
  Tensor grad;
};

std::atomic<std::uint64_t> last_backward_pass = 0;

// Sharing a tensor that requires grad between threads is not supported; what is cheap to catch
// is two threads' backward passes accumulating into it at once, which would race on its grad.
void hold_for_backward(detail::TensorImpl& impl) {
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id expected;
  if (!impl.backward_owner.compare_exchange_strong(expected, me, std::memory_order_acquire) &&
      expected != me) {
    fail(
        "backward: a tensor of shape {} that requires grad is being differentiated by another "
        "thread at the same time; tensors that require grad are not shared between threads (give "
        "each thread its own copy, or run the backward passes one after the other)",
        impl.shape.str());
  }
  ++impl.backward_holds;
}

void release_backward_hold(detail::TensorImpl& impl) {
  if (--impl.backward_holds == 0) impl.backward_owner.store({}, std::memory_order_release);
}

// Working vectors of one backward pass, kept per thread and nesting depth so that a steady loop
// reuses their capacity instead of allocating every pass.
struct BackwardScratch {
  std::vector<LeafGrad> leaves;
  std::vector<Tensor> grads;
  std::vector<Tensor> tensors;
  std::vector<std::uint8_t> needs;
  std::vector<Tensor> grad_inputs;
};

class ScratchLease {
 public:
  ScratchLease() {
    if (depth_ == stack_.size()) stack_.push_back(std::make_unique<BackwardScratch>());
    scratch_ = stack_[depth_++].get();
  }
  ~ScratchLease() {
    for (LeafGrad& leaf : scratch_->leaves) release_backward_hold(*leaf.leaf);
    detail::clear_and_trim(scratch_->leaves);
    detail::clear_and_trim(scratch_->grads);
    detail::clear_and_trim(scratch_->tensors);
    detail::clear_and_trim(scratch_->needs);
    detail::clear_and_trim(scratch_->grad_inputs);
    --depth_;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  BackwardScratch& operator*() const { return *scratch_; }

 private:
  static thread_local std::vector<std::unique_ptr<BackwardScratch>> stack_;
  static thread_local std::size_t depth_;
  BackwardScratch* scratch_;
};

thread_local std::vector<std::unique_ptr<BackwardScratch>> ScratchLease::stack_;
thread_local std::size_t ScratchLease::depth_ = 0;

}  // namespace

std::vector<Tensor> run_backward(const Tensor& y, const Tensor& seed_in, BackwardOptions options,
                                 std::span<const Tensor> wrt) {
  const char* what = wrt.empty() ? "backward" : "grad";
  if (!y.defined()) fail("{}: the output tensor is undefined", what);
  if (!y.requires_grad()) {
    fail(
        "{}: the output does not require grad: no input of the ops that produced it requires "
        "grad (call requires_grad(true) on a leaf), or it was computed under NoGradGuard",
        what);
  }
  Tensor seed = seed_in;
  if (!seed.defined()) {
    if (y.numel() != 1) {
      fail("{}: the output has shape {}, not a single element; pass a seed gradient of that shape",
           what, y.shape().str());
    }
    seed = ones_like(y);
  } else if (!(seed.shape() == y.shape()) || seed.dtype() != y.dtype()) {
    fail("{}: the seed gradient is {} {} but the output is {} {}", what, dtype_name(seed.dtype()),
         seed.shape().str(), dtype_name(y.dtype()), y.shape().str());
  }
  options.retain_graph = options.retain_graph || options.create_graph;

  const std::uint64_t pass = last_backward_pass.fetch_add(1, std::memory_order_relaxed) + 1;
  const ScratchLease lease;
  BackwardScratch& scratch = *lease;
  std::vector<LeafGrad>& leaves = scratch.leaves;
  auto leaf_slot = [&](const std::shared_ptr<detail::TensorImpl>& impl) -> Tensor& {
    if (impl->slot_stamp.load(std::memory_order_relaxed) != pass) {
      // Once listed, the lease releases the hold whatever happens next.
      hold_for_backward(*impl);
      try {
        leaves.push_back({impl, Tensor()});
      } catch (...) {
        release_backward_hold(*impl);
        throw;
      }
      impl->slot_stamp.store(pass, std::memory_order_relaxed);
      impl->slot = leaves.size() - 1;
    }
    return leaves[impl->slot].grad;
  };

  std::vector<Tensor> results(wrt.size());
  std::vector<std::int64_t> wanted_refs(wrt.size(), -1);
  const detail::Link& link = y.impl()->link;
  // Rules, and the accumulation into leaves, record only under create_graph, and then on the
  // tape of the tensor being differentiated.
  GradModeGuard mode(options.create_graph);
  std::optional<detail::BusyScope> busy;
  std::optional<detail::RecordingScope> recording;

  if (link.core == nullptr) {
    accumulate(leaf_slot(y.impl()), seed);
  } else {
    detail::TapeCore& core = *link.core;
    if (core.thread != std::this_thread::get_id()) detail::fail_other_thread(what);
    if (!core.holds(link) || core.entry(link.entry).freed) detail::fail_graph_gone(what);
    for (std::size_t k = 0; k < wrt.size(); ++k) {
      if (!wrt[k].defined())
        fail("grad: input {} to differentiate with respect to is undefined", k);
      const detail::Link& wanted = wrt[k].impl()->link;
      if (core.holds(wanted)) {
        wanted_refs[k] = wanted.ref;
      } else if (wrt[k].requires_grad()) {
        leaf_slot(wrt[k].impl());
      }
    }

    busy.emplace(core);
    recording.emplace(&core);
    const std::int64_t top_ref = core.entry(link.entry).output_ref();
    std::vector<Tensor>& grads = scratch.grads;
    grads.resize(std::size_t(top_ref + 1));
    grads.back() = seed;
    std::vector<Tensor>& tensors = scratch.tensors;
    std::vector<std::uint8_t>& needs = scratch.needs;
    std::vector<Tensor>& grad_inputs = scratch.grad_inputs;

    for (std::int64_t index = link.entry; index >= 0; --index) {
      const std::int64_t out_ref = core.entry(index).output_ref();
      Tensor& slot = grads[std::size_t(out_ref)];
      if (!slot.defined()) continue;
      if (core.entry(index).freed) detail::fail_graph_gone(what);
      for (std::size_t k = 0; k < wrt.size(); ++k) {
        if (wanted_refs[k] == out_ref) results[k] = slot;
      }
      Tensor grad_output = std::move(slot);

      // Copies: a rule recording under create_graph may grow the entry and ref vectors.
      const detail::Entry entry = core.entry(index);
      if (options.create_graph && entry.op->differentiability == Differentiability::once) {
        fail(
            "backward of '{}' (entry {}, {}:{}) is once-differentiable: its rule is not built "
            "from differentiable ops, so create_graph cannot record it",
            entry.op->name, index, entry.location.file_name(), entry.location.line());
      }
      check_versions(core, entry, index);
      detail::RuleInterceptor* interceptor = detail::thread_state.interceptor;
      if (interceptor) interceptor->before(*entry.op, grad_output);
      tensors.clear();
      for (std::int64_t r = entry.first_ref; r < entry.end_ref(); ++r) {
        tensors.emplace_back(core.ref(r).impl);
      }
      needs.assign(entry.num_inputs, 0);
      for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
        needs[i] = core.ref(entry.first_ref + i).route != detail::kNoRoute;
      }
      grad_inputs.assign(entry.num_inputs, Tensor());
      if (options.create_graph && entry.op->rebuilds_residuals && entry.num_saved > 0) {
        const AnomalyGuard inside_rule(false);
        rebuild_residuals(entry, index, tensors, needs);
      }
      BackwardContext ctx(std::span(tensors.data(), entry.num_inputs), tensors[entry.num_inputs],
                          std::span(tensors.data() + entry.num_inputs + 1, entry.num_saved),
                          grad_output, needs, grad_inputs, options.create_graph, entry.op->name,
                          entry.location);
      if (detail::tracing()) {
        SPDLOG_LOGGER_TRACE(&logger(), "backward #{} {}: {} (grad {})", index, entry.op->name,
                            entry.op->formula, grad_output.shape().str());
      }
      // Ops inside a rule are its implementation: an infinity they produce is reported below as
      // the rule's gradient, against the entry and the user's line, not as a forward anomaly.
      const bool detect_anomaly = detail::thread_state.detect_anomaly;
      {
        const AnomalyGuard inside_rule(false);
        entry.op->backward(*entry.op, ctx, entry.attrs.data());
      }
      if (interceptor) interceptor->after(*entry.op, grad_inputs);

      for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
        if (!needs[i] || !grad_inputs[i].defined()) continue;
        grad_inputs[i] = conform(std::move(grad_inputs[i]), tensors[i], *entry.op, index, i);
        if (detect_anomaly) [[unlikely]] {
          check_gradient(grad_inputs[i], i, *entry.op, index, entry.location,
                         std::span(tensors.data(), entry.num_inputs));
        }
      }
      if (detail::BackwardObserver* observer = detail::thread_state.observer) {
        observe(*observer, core, entry, index, grad_output, tensors, grad_inputs);
      }
      for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
        if (!needs[i] || !grad_inputs[i].defined()) continue;
        Tensor g = std::move(grad_inputs[i]);
        const detail::Ref& input = core.ref(entry.first_ref + i);
        if (input.route >= 0) {
          accumulate(grads[std::size_t(input.route)], std::move(g));
        } else {
          accumulate(leaf_slot(input.impl), std::move(g));
        }
      }
      if (!options.retain_graph) core.free_entry(core.entry(index));
    }
  }

  if (wrt.empty()) {
    for (LeafGrad& leaf : leaves) {
      // A gradient handed to several leaves (add gives g to both inputs) or still held by the
      // caller (the seed) is copied, so that updating one grad() in place never changes another.
      const bool shared = leaf.grad.defined() && leaf.grad.impl().use_count() > 1;
      if (!leaf.leaf->grad.defined() && shared && !options.create_graph) {
        leaf.grad = leaf.grad.copy();
      }
      accumulate(leaf.leaf->grad, std::move(leaf.grad));
    }
    return {};
  }
  for (std::size_t k = 0; k < wrt.size(); ++k) {
    if (results[k].defined()) continue;
    const auto& impl = wrt[k].impl();
    const bool reached = impl->slot_stamp == pass && leaves[impl->slot].grad.defined();
    results[k] = reached ? leaves[impl->slot].grad : zeros_like(wrt[k]);
  }
  return results;
}

std::vector<Tensor> grad(const Tensor& y, const std::vector<Tensor>& wrt, const Tensor& seed,
                         BackwardOptions options) {
  if (wrt.empty()) fail("grad: no tensors to differentiate with respect to");
  return run_backward(y, seed, options, wrt);
}

}  // namespace tg

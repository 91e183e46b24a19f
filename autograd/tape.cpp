#include "autograd/tape.h"

#include <algorithm>
#include <cstring>

#include "autograd/log.h"
#include "autograd/tape_core.h"

namespace tg {
namespace detail {

namespace {
thread_local std::vector<TapeCore*> recording;  // the Tape scopes of this thread, innermost last
}  // namespace

TapeCore& recording_core() {
  return recording.empty() ? default_tape().core() : *recording.back();
}

RecordingScope::RecordingScope(TapeCore* core) {
  recording.push_back(core);
}
RecordingScope::~RecordingScope() {
  recording.pop_back();
}

BusyScope::~BusyScope() {
  --core_.busy;
  core_.maybe_reclaim();
}

bool tracing() {
  static spdlog::logger& log = logger();
  return log.should_log(spdlog::level::trace);
}

void fail_other_thread(const char* what) {
  fail(
      "{}: the tensor was recorded on another thread's tape; a tensor that takes part in a graph "
      "belongs to the thread that recorded it (detach() it to share its value)",
      what);
}

void fail_graph_gone(const char* what) {
  fail(
      "{}: the graph behind this tensor is gone: it was freed by an earlier backward without "
      "retain_graph, or its tape was cleared or destroyed (run the forward again, or pass "
      "retain_graph = true to the first backward)",
      what);
}

void TapeCore::release() {
  if (refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

std::int64_t TapeCore::route_of(const Tensor& input, const OpBase& op, std::size_t position) const {
  if (!input.requires_grad()) return kNoRoute;
  const Link& link = input.impl()->link;
  if (link.core == nullptr) return kLeafRoute;
  const TapeCore& producer = core_of(link);
  if (producer.thread != thread) fail_other_thread(op.name);
  if (holds(link)) return link.ref;
  if (&producer != this && producer.alive && link.generation == producer.generation) {
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
  // Back to the first threshold, not twice this graph's size: after one huge graph, a loop that
  // carries a handle from step to step would otherwise hold that many entries before its first
  // reclamation. Doubling from the start keeps compaction's cost linear in a graph's size.
  compact_at = kMinEntriesBeforeCompaction;
  clear_and_trim(entries);
  clear_and_trim(refs);
  --busy;
}

// An entry is needed while a handle to its output lives, or a needed entry takes its output: one
// reverse sweep marks them. A freed entry is kept only while something needs it, so that
// backpropagating into it still reports that it was freed.
std::vector<std::uint8_t>& TapeCore::mark_needed() {
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
  return needed;
}

void TapeCore::compact() {
  ++busy;
  std::vector<std::uint8_t>& needed = mark_needed();
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

void TapeCore::first_handle(TensorImpl& impl) {
  if (holds(impl.link)) ++live_outputs;
}

void TapeCore::last_handle(TensorImpl& impl) {
  if (holds(impl.link) && --live_outputs == 0) maybe_reclaim();
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
      if (impl->handles++ == 0) first_handle(*impl);
    } else if (--impl->handles == 0) {
      last_handle(*impl);
    }
  }
}

void TapeCore::handle_elsewhere(std::shared_ptr<TensorImpl> impl, int change) {
  {
    const std::lock_guard lock(elsewhere_mutex);
    // A gone tape counts no handles.
    if (alive) {
      try {
        elsewhere.emplace_back(std::move(impl), change);
        has_elsewhere.store(true, std::memory_order_release);
        return;
      } catch (const std::bad_alloc&) {
        // A handle taken must be counted, or the tape could reclaim what it refers to.
        if (change > 0) throw;
        // A handle dropped stays counted: the tape reclaims only when cleared.
      }
    }
  }
  // The impl may be the core's last reference: it goes after the lock is released, and nothing of
  // this core is touched after it.
}

}  // namespace detail

// ---- Tape ----

Tape::Tape() : core_(new detail::TapeCore), scoped_(true) {
  core_->owner = this;
  detail::recording.push_back(core_);
}

Tape::Tape(DefaultTag) : core_(new detail::TapeCore), scoped_(false) {
  core_->owner = this;
  core_->auto_reclaim = true;
}

Tape::~Tape() {
  if (scoped_) {
    auto& stack = detail::recording;
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
  core_->release();
}

Tape& default_tape() {
  thread_local Tape tape{Tape::DefaultTag{}};
  return tape;
}

Tape& Tape::current() {
  Tape* owner = detail::recording_core().owner;
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

}  // namespace tg

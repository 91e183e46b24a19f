#include "autograd/inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <unordered_map>

#include "autograd/tape_core.h"

namespace tg {
namespace {

// ---- names ----

struct NameTable {
  struct Named {
    // Holds the impl's memory block, so its address is not reused while the name is kept: a
    // match on the address with an expired pointer is a dead tensor, never a new one.
    std::weak_ptr<detail::TensorImpl> impl;
    std::string name;
  };
  std::mutex mutex;
  std::unordered_map<const detail::TensorImpl*, Named> names;
  std::size_t prune_at = 64;
};

NameTable& name_table() {
  static NameTable table;
  return table;
}

// Explicit names for one picture first, then tg::name.
class Namer {
 public:
  explicit Namer(const TensorNames& names) {
    for (const auto& [name, t] : names) {
      if (t.defined()) explicit_[t.impl().get()] = name;
    }
  }
  std::string operator()(const Tensor& t) const {
    if (!t.defined()) return "";
    const auto it = explicit_.find(t.impl().get());
    return it != explicit_.end() ? it->second : name_of(t);
  }

 private:
  std::unordered_map<const void*, std::string> explicit_;
};

// ---- text ----

// Where an input comes from: its name, entry k (#k, with the name if it has one), leaf or const.
std::string source_of(const Tensor& input, std::int64_t entry, const Namer& namer) {
  const std::string name = namer(input);
  if (entry >= 0)
    return name.empty() ? fmt::format("#{}", entry) : fmt::format("#{} {}", entry, name);
  if (!name.empty()) return name;
  return input.defined() && input.requires_grad() ? "leaf" : "const";
}

// The value as Tensor::str prints it, without the grad_fn / requires_grad suffix (a detached
// view prints just that).
std::string value_text(const Tensor& t) {
  return t.detach().str();
}

// For the tape print, one line whatever the rank: "[2, 2] tensor([[1., 2.], [3., 4.]])".
std::string brief(const Tensor& t) {
  if (!t.defined()) return "(freed)";
  if (t.numel() > detail::kShowValues) return t.shape().str() + " " + dtype_name(t.dtype());
  std::string text;
  bool after_newline = false;
  for (char c : value_text(t)) {
    if (c == '\n') {
      after_newline = true;
    } else if (!(after_newline && c == ' ')) {
      if (after_newline) text += ' ';
      after_newline = false;
      text += c;
    }
  }
  return t.shape().str() + " " + text;
}

// For the trace: small tensors with their values (a matrix over several lines, indented under
// the line that names it), large ones as their range and mean.
std::string shown(const Tensor& t, const std::string& indent) {
  if (!t.defined()) return "(none)";
  const std::string head = t.shape().str();
  if (t.numel() <= detail::kShowValues) {
    std::string text = value_text(t);
    if (t.rank() < 2) return head + " " + text;
    std::string indented = "\n" + indent;
    for (char c : text) indented += c == '\n' ? "\n" + indent : std::string(1, c);
    return head + indented;
  }
  double low = INFINITY, high = -INFINITY, total = 0;
  std::int64_t non_finite = 0;
  for (double v : t.to_vector()) {
    if (!std::isfinite(v)) {
      ++non_finite;
      continue;
    }
    low = std::min(low, v);
    high = std::max(high, v);
    total += v;
  }
  const std::int64_t finite = t.numel() - non_finite;
  std::string text = fmt::format("{} {}", head, dtype_name(t.dtype()));
  if (finite > 0) {
    text += fmt::format(", min {:.4g}, max {:.4g}, mean {:.4g}", low, high, total / double(finite));
  }
  if (non_finite > 0) text += fmt::format(", {} non-finite", non_finite);
  return text;
}

// The values split along the last axis: "[0.5, -1]" per row ("0.3439" for a scalar).
std::vector<std::string> value_rows(const Tensor& t) {
  const std::vector<double> values = t.to_vector();
  const std::size_t columns = t.rank() == 0 ? 1 : std::size_t(t.size(t.rank() - 1));
  std::vector<std::string> rows;
  for (std::size_t start = 0; start < values.size(); start += columns) {
    std::vector<std::string> row;
    for (std::size_t i = start; i < start + columns; ++i) {
      row.push_back(fmt::format("{:.4g}", values[i]));
    }
    rows.push_back(t.rank() == 0 ? row.front() : fmt::format("[{}]", fmt::join(row, ", ")));
  }
  return rows;
}

// A DOT label's value lines: one per row for a matrix, else one: "[0.5, -1]", "[[1], [2]]".
std::vector<std::string> dot_value_lines(const Tensor& t) {
  std::vector<std::string> rows = value_rows(t);
  if (t.rank() == 2 || rows.size() == 1) return rows;
  return {fmt::format("[{}]", fmt::join(rows, ", "))};
}

std::string dot_escape(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

std::string dot_label(const detail::GraphTensor& node) {
  const Tensor& t = node.tensor;
  if (!t.defined()) return dot_escape(node.label) + " (freed)";
  std::string text = dot_escape(node.label) + " " + t.shape().str();
  if (t.numel() == 0 || t.numel() > detail::kShowValues) return text;
  for (const std::string& line : dot_value_lines(t)) text += "\\n" + line;
  const Tensor grad = t.grad();
  if (!grad.defined()) return text;
  const std::vector<std::string> lines = dot_value_lines(grad);
  if (lines.size() == 1) return text + "\\ngrad " + lines.front();
  text += "\\ngrad";
  for (const std::string& line : lines) text += "\\n" + line;
  return text;
}

}  // namespace

// ---- names ----

Tensor name(const Tensor& tensor, std::string name) {
  if (!tensor.defined()) fail("tg::name: cannot name an undefined tensor '{}'", name);
  NameTable& table = name_table();
  const std::lock_guard lock(table.mutex);
  if (table.names.size() >= table.prune_at) {
    std::erase_if(table.names, [](const auto& item) { return item.second.impl.expired(); });
    table.prune_at = std::max<std::size_t>(64, 2 * table.names.size());
  }
  table.names[tensor.impl().get()] = {tensor.impl(), std::move(name)};
  return tensor;
}

std::string name_of(const Tensor& tensor) {
  if (!tensor.defined()) return "";
  NameTable& table = name_table();
  const std::lock_guard lock(table.mutex);
  const auto it = table.names.find(tensor.impl().get());
  return it != table.names.end() && !it->second.impl.expired() ? it->second.name : "";
}

// ---- the tape and the backward trace as text ----

std::ostream& operator<<(std::ostream& out, const Tape& tape) {
  const Namer namer({});
  for (const TapeEntryView& e : tape.entries()) {
    std::vector<std::string> sources;
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
      sources.push_back(source_of(e.inputs[i], e.input_entries[i], namer));
    }
    const std::string name = namer(e.output);
    out << fmt::format("#{} {}({}) -> {}{}  at {}{}\n", e.index, e.op, fmt::join(sources, ", "),
                       name.empty() ? "" : name + " ", brief(e.output), detail::where(e.location),
                       e.freed ? "  (residuals freed)" : "");
  }
  return out;
}

void BackwardTrace::on_step(const detail::StepView& step) {
  steps_.push_back({step.entry, step.op.name, step.op.formula, step.location, step.grad_output,
                    std::vector(step.inputs.begin(), step.inputs.end()),
                    std::vector(step.input_entries.begin(), step.input_entries.end()),
                    std::vector(step.grad_inputs.begin(), step.grad_inputs.end())});
}

std::string BackwardTrace::str() const {
  const Namer namer({});
  std::string text;
  for (const BackwardStep& s : steps_) {
    text += fmt::format("backward #{} {}  at {}\n  upstream gradient g = {}\n  rule: {}\n", s.entry,
                        s.op, detail::where(s.location), shown(s.grad_output, "      "), s.formula);
    for (std::size_t i = 0; i < s.inputs.size(); ++i) {
      if (!s.grad_inputs[i].defined()) continue;
      text += fmt::format("  -> input {} ({}): {}\n", i,
                          source_of(s.inputs[i], s.input_entries[i], namer),
                          shown(s.grad_inputs[i], "       "));
    }
  }
  return text;
}

// ---- the tape's entries, as TapeEntryView ----

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
    view.input_entries.push_back(core.input_entry(core.ref(r)));
  }
  view.output = Tensor(core.ref(e.output_ref()).impl);
  for (std::int64_t r = e.output_ref() + 1; r < e.end_ref(); ++r) {
    view.saved.emplace_back(core.ref(r).impl);
  }
  return view;
}

TensorFunction Tape::entry_function(std::int64_t index) const {
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

std::vector<TapeEntryView> Tape::entries() const {
  std::vector<TapeEntryView> views;
  for (std::int64_t i = 0; i < std::int64_t(core_->entries.size()); ++i) views.push_back(entry(i));
  return views;
}

// ---- the graph ----

namespace detail {

std::string where(const std::source_location& location) {
  return fmt::format("{}:{}", std::filesystem::path(location.file_name()).filename().string(),
                     location.line());
}

Graph collect_graph(const Tape& tape, const Tensor& output, const TensorNames& names,
                    const char* caller) {
  const std::int64_t top = tape.index_of(output);
  if (top < 0) fail("{}: the output tensor was not recorded on this tape", caller);

  // The entries the output depends on: one reverse sweep, as backward walks them.
  std::vector<std::uint8_t> needed(std::size_t(top + 1), 0);
  needed.back() = 1;
  Graph graph;
  for (std::int64_t i = top; i >= 0; --i) {
    if (!needed[std::size_t(i)]) continue;
    graph.entries.push_back(tape.entry(i));
    for (std::int64_t source : graph.entries.back().input_entries) {
      if (source >= 0) needed[std::size_t(source)] = 1;
    }
  }
  std::reverse(graph.entries.begin(), graph.entries.end());

  const Namer namer(names);
  std::map<std::int64_t, std::size_t> output_node;  // entry index -> node
  std::map<const void*, std::size_t> value_node;    // leaf or constant impl -> node
  std::int64_t values = 0;
  const auto add = [&](GraphTensor node) {
    graph.tensors.push_back(std::move(node));
    return graph.tensors.size() - 1;
  };
  for (const TapeEntryView& e : graph.entries) {
    std::vector<std::size_t>& inputs = graph.inputs.emplace_back();
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
      const Tensor& input = e.inputs[i];
      if (e.input_entries[i] >= 0) {
        inputs.push_back(output_node.at(e.input_entries[i]));
        continue;
      }
      const auto known = input.defined() ? value_node.find(input.impl().get()) : value_node.end();
      if (known != value_node.end()) {
        inputs.push_back(known->second);
        continue;
      }
      std::string label = namer(input);
      if (label.empty()) label = input.defined() && input.requires_grad() ? "leaf" : "const";
      inputs.push_back(add({input, label, fmt::format("v{}", values++), -1}));
      if (input.defined()) value_node[input.impl().get()] = inputs.back();
    }
    std::string label = namer(e.output);
    if (label.empty()) label = fmt::format("#{}", e.index);
    output_node[e.index] = add({e.output, label, fmt::format("t{}", e.index), e.index});
    graph.outputs.push_back(output_node[e.index]);
  }
  return graph;
}

}  // namespace detail

std::string to_dot(const Tape& tape, const Tensor& output, const TensorNames& names) {
  const detail::Graph graph = detail::collect_graph(tape, output, names, "to_dot");
  std::string dot =
      "digraph tape {\n  rankdir=TB;\n  node [fontname=\"sans-serif\", fontsize=10];\n";
  std::vector<std::uint8_t> drawn(graph.tensors.size(), 0);
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    const TapeEntryView& e = graph.entries[k];
    for (std::size_t input : graph.inputs[k]) {
      const detail::GraphTensor& node = graph.tensors[input];
      if (node.entry < 0 && !drawn[input]) {
        dot += fmt::format("  {} [shape=ellipse, label=\"{}\"];\n", node.id, dot_label(node));
      }
      drawn[input] = 1;
    }
    dot += fmt::format(
        "  op{} [shape=box, style=\"{}\", fillcolor=\"#dde8f5\", label=\"#{} {}{}\"];\n", e.index,
        e.freed ? "filled,dashed" : "filled", e.index, e.op, e.freed ? "\\n(residuals freed)" : "");
    for (std::size_t input : graph.inputs[k]) {
      dot += fmt::format("  {} -> op{};\n", graph.tensors[input].id, e.index);
    }
    const detail::GraphTensor& out = graph.tensors[graph.outputs[k]];
    dot += fmt::format("  {} [shape=ellipse, label=\"{}\"];\n  op{} -> {};\n", out.id,
                       dot_label(out), e.index, out.id);
  }
  return dot + "}\n";
}

}  // namespace tg

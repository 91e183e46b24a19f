#include "autograd/inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <map>
#include <ostream>
#include <set>

namespace tg {
namespace {

// Tensors up to this many elements are shown with their values.
constexpr std::int64_t kShowValues = 8;

std::string brief(const Tensor& t) {
  if (!t.defined()) return "(freed)";
  if (t.numel() > kShowValues) return t.shape().str() + " " + dtype_name(t.dtype());
  // The value without the grad_fn / requires_grad suffix: a detached view prints just that.
  return t.shape().str() + " " + t.detach().str();
}

std::string where(const std::source_location& location) {
  return fmt::format("{}:{}", std::filesystem::path(location.file_name()).filename().string(),
                     location.line());
}

std::string source_of(const Tensor& input, std::int64_t entry) {
  if (entry >= 0) return fmt::format("#{}", entry);
  return input.defined() && input.requires_grad() ? "leaf" : "const";
}

// Up to kShowValues numbers, compact: "[0.5, -1]" or "0.3439".
std::string compact_values(const Tensor& t) {
  std::vector<std::string> values;
  for (double v : t.to_vector()) values.push_back(fmt::format("{:.4g}", v));
  return t.rank() == 0 ? values.front() : fmt::format("[{}]", fmt::join(values, ", "));
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tape& tape) {
  for (const TapeEntryView& e : tape.entries()) {
    std::vector<std::string> sources;
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
      sources.push_back(source_of(e.inputs[i], e.input_entries[i]));
    }
    out << fmt::format("#{} {}({}) -> {}  at {}{}\n", e.index, e.op, fmt::join(sources, ", "),
                       brief(e.output), where(e.location), e.freed ? "  (residuals freed)" : "");
  }
  return out;
}

BackwardTrace::BackwardTrace() : previous_(detail::set_backward_observer(this)) {}

BackwardTrace::~BackwardTrace() {
  detail::set_backward_observer(previous_);
}

void BackwardTrace::on_step(const BackwardStep& step) {
  steps_.push_back(step);
}

std::string BackwardTrace::str() const {
  std::string text;
  for (const BackwardStep& s : steps_) {
    text += fmt::format("backward #{} {}  at {}\n  upstream gradient g = {}\n  rule: {}\n", s.entry,
                        s.op, where(s.location), brief(s.grad_output), s.formula);
    for (std::size_t i = 0; i < s.inputs.size(); ++i) {
      if (!s.grad_inputs[i].defined()) continue;
      text += fmt::format("  -> input {} ({}): {}\n", i, source_of(s.inputs[i], s.input_entries[i]),
                          brief(s.grad_inputs[i]));
    }
  }
  return text;
}

std::string to_dot(const Tape& tape, const Tensor& output,
                   const std::vector<std::pair<std::string, Tensor>>& names) {
  std::map<const void*, std::string> name_of;
  for (const auto& [name, t] : names) name_of[t.impl().get()] = name;
  const auto label = [&](const Tensor& t, const std::string& fallback) {
    const auto named = name_of.find(t.impl().get());
    std::string text =
        fmt::format("{} {}", named != name_of.end() ? named->second : fallback, t.shape().str());
    if (t.numel() <= kShowValues && t.numel() > 0) {
      text += "\\n" + compact_values(t);
      if (t.grad().defined()) text += "\\ngrad " + compact_values(t.grad());
    }
    return text;
  };

  // The entries the output depends on: one reverse sweep, as backward walks them.
  const std::int64_t top = tape.index_of(output);
  if (top < 0) fail("to_dot: the output tensor was not recorded on this tape");
  std::set<std::int64_t> needed{top};
  std::vector<TapeEntryView> views;
  for (std::int64_t i = top; i >= 0; --i) {
    if (!needed.count(i)) continue;
    views.push_back(tape.entry(i));
    for (std::int64_t source : views.back().input_entries) {
      if (source >= 0) needed.insert(source);
    }
  }

  std::string dot =
      "digraph tape {\n  rankdir=TB;\n  node [fontname=\"sans-serif\", fontsize=10];\n";
  std::set<const void*> drawn;
  for (auto it = views.rbegin(); it != views.rend(); ++it) {
    const TapeEntryView& e = *it;
    dot +=
        fmt::format("  op{} [shape=box, style=filled, fillcolor=\"#dde8f5\", label=\"#{} {}\"];\n",
                    e.index, e.index, e.op);
    for (std::size_t i = 0; i < e.inputs.size(); ++i) {
      const Tensor& input = e.inputs[i];
      if (!input.defined()) continue;
      const void* id = input.impl().get();
      if (e.input_entries[i] >= 0) {
        dot += fmt::format("  t{} -> op{};\n", e.input_entries[i], e.index);
        continue;
      }
      if (drawn.insert(id).second) {
        dot += fmt::format("  \"{}\" [shape=ellipse, label=\"{}\"];\n", id,
                           label(input, input.requires_grad() ? "leaf" : "const"));
      }
      dot += fmt::format("  \"{}\" -> op{};\n", id, e.index);
    }
    dot +=
        fmt::format("  t{} [shape=ellipse, label=\"{}\"];\n  op{} -> t{};\n", e.index,
                    e.output.defined() ? label(e.output, fmt::format("#{}", e.index)) : "(freed)",
                    e.index, e.index);
  }
  return dot + "}\n";
}

}  // namespace tg

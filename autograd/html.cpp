// The interactive backprop page (tg::to_html): the graph as SVG, the tape's entries, and the
// gradients a BackwardTrace recorded, embedded as JSON in one self-contained HTML file whose
// script steps through the forward and the backward pass.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "autograd/inspect.h"
#include "autograd/log.h"
#include "ops/ops.h"

namespace tg {
namespace {

using nlohmann::json;

// Tensors up to this many elements are embedded with every value; larger ones as a summary.
constexpr std::int64_t kPageValues = 4096;
// A softmax along an axis of at most this size shows its explicit Jacobian, for this many slices.
constexpr std::int64_t kJacobianSize = 8;
constexpr std::int64_t kJacobianSlices = 4;

// JSON has no NaN or infinity: they travel as the strings JavaScript's Number() reads back.
json number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

json numbers(const std::vector<double>& values) {
  json list = json::array();
  for (double v : values) list.push_back(number(v));
  return list;
}

json value_json(const Tensor& t) {
  if (!t.defined()) return nullptr;
  json value = {{"shape", json(std::vector<std::int64_t>(t.shape().begin(), t.shape().end()))},
                {"dtype", dtype_name(t.dtype())}};
  const std::vector<double> values = t.to_vector();
  if (t.numel() <= kPageValues) {
    value["values"] = numbers(values);
    return value;
  }
  double low = INFINITY, high = -INFINITY, total = 0;
  for (double v : values) {
    low = std::min(low, v);
    high = std::max(high, v);
    total += v;
  }
  value["summary"] = {
      {"min", number(low)}, {"max", number(high)}, {"mean", number(total / double(values.size()))}};
  return value;
}

// The text of the line an op was recorded on, when its source file is readable here.
class SourceLines {
 public:
  std::string line(const std::source_location& location) {
    const std::string file = location.file_name();
    auto it = files_.find(file);
    if (it == files_.end()) {
      std::vector<std::string> lines;
      std::ifstream in(file);
      for (std::string text; std::getline(in, text);) lines.push_back(text);
      it = files_.emplace(file, std::move(lines)).first;
    }
    const std::size_t index = location.line() - 1;
    if (location.line() == 0 || index >= it->second.size()) return "";
    const std::string& text = it->second[index];
    const std::size_t first = text.find_first_not_of(" \t");
    return first == std::string::npos ? "" : text.substr(first);
  }

 private:
  std::map<std::string, std::vector<std::string>> files_;
};

// The steps of the last backward pass the trace recorded from the entry `top`. Within one pass
// the entries visited strictly decrease, so a pass ends where they do not.
std::vector<const BackwardStep*> last_pass(const BackwardTrace& trace, std::int64_t top) {
  const std::vector<BackwardStep>& steps = trace.steps();
  std::vector<const BackwardStep*> found;
  std::size_t start = 0;
  for (std::size_t i = 1; i <= steps.size(); ++i) {
    if (i < steps.size() && steps[i].entry < steps[i - 1].entry) continue;
    if (steps[start].entry == top) {
      found.clear();
      for (std::size_t k = start; k < i; ++k) found.push_back(&steps[k]);
    }
    start = i;
  }
  if (found.empty()) {
    fail(
        "to_html: the trace recorded no backward pass from this loss (tape entry {}); create the "
        "tg::BackwardTrace before calling backward",
        top);
  }
  return found;
}

// The axis a softmax output s was taken along: the last one whose slices each sum to 1, or -1.
int softmax_axis(const Shape& shape, const std::vector<double>& s) {
  for (int axis = shape.rank() - 1; axis >= 0; --axis) {
    const std::int64_t n = shape[axis];
    std::int64_t inner = 1;
    for (int a = axis + 1; a < shape.rank(); ++a) inner *= shape[a];
    bool sums_to_one = n > 0;
    for (std::int64_t start = 0; sums_to_one && start < shape.numel(); ++start) {
      if ((start / inner) % n != 0) continue;  // not the first element of its slice
      double total = 0;
      for (std::int64_t k = 0; k < n; ++k) total += s[std::size_t(start + k * inner)];
      sums_to_one = std::abs(total - 1) <= 1e-5;
    }
    if (sums_to_one) return axis;
  }
  return -1;
}

// For a softmax step: per slice s along the softmax axis, the explicit Jacobian
// J = diag(s) − s sᵀ, the product Jᵀg it gives, and the gradient the rule s ⊙ (g − ⟨g, s⟩) sent,
// so that the page shows the O(n²) matrix and the O(n) rule agreeing.
json softmax_jacobian(const Tensor& output, const Tensor& grad_output, const Tensor& grad_input) {
  if (!output.defined() || !grad_output.defined() || !grad_input.defined()) return nullptr;
  const std::vector<double> s = output.to_vector();
  const int axis = softmax_axis(output.shape(), s);
  if (axis < 0 || output.shape()[axis] > kJacobianSize) return nullptr;
  const std::vector<double> g = grad_output.to_vector();
  const std::vector<double> rule = grad_input.to_vector();
  const std::int64_t n = output.shape()[axis];
  std::int64_t inner = 1;
  for (int a = axis + 1; a < output.shape().rank(); ++a) inner *= output.shape()[a];
  const std::int64_t total = output.numel() / n;
  json slices = json::array();
  for (std::int64_t slice = 0; slice < std::min(total, kJacobianSlices); ++slice) {
    const std::int64_t start = (slice / inner) * n * inner + slice % inner;
    const auto at = [&](const std::vector<double>& v, std::int64_t k) {
      return v[std::size_t(start + k * inner)];
    };
    std::vector<double> sv, gv, jacobian, jg, rv;
    for (std::int64_t i = 0; i < n; ++i) {
      sv.push_back(at(s, i));
      gv.push_back(at(g, i));
      rv.push_back(at(rule, i));
      double product = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        const double entry = (i == j ? at(s, i) : 0.0) - at(s, i) * at(s, j);
        jacobian.push_back(entry);
        product += entry * at(g, j);  // J is symmetric: (Jᵀg)ᵢ = Σⱼ Jᵢⱼ gⱼ
      }
      jg.push_back(product);
    }
    slices.push_back({{"s", numbers(sv)},
                      {"g", numbers(gv)},
                      {"J", numbers(jacobian)},
                      {"Jg", numbers(jg)},
                      {"rule", numbers(rv)}});
  }
  return {{"axis", axis}, {"n", n}, {"total", total}, {"slices", slices}};
}

std::string xml_escape(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string tensor_caption(const detail::GraphTensor& node) {
  return node.tensor.defined() ? node.label + " " + node.tensor.shape().str()
                               : node.label + " (freed)";
}

std::string op_caption(const TapeEntryView& e) {
  return fmt::format("#{} {}", e.index, e.op);
}

// ---- the graph as SVG ----

// Graphviz's layout, when `dot` is installed and runs.
std::optional<std::string> graphviz_svg(const detail::Graph& graph) {
  if (std::system("command -v dot > /dev/null 2>&1") != 0) return std::nullopt;
  std::string dot =
      "digraph page {\n  rankdir=TB;\n  bgcolor=\"transparent\";\n"
      "  ranksep=0.35;\n  node [fontname=\"sans-serif\", fontsize=14];\n  edge "
      "[color=\"#777777\"];\n";
  const auto quoted = [](const std::string& text) {
    std::string escaped;
    for (char c : text) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    return "\"" + escaped + "\"";
  };
  for (const detail::GraphTensor& node : graph.tensors) {
    dot += fmt::format(
        "  {0} [id=\"{0}\", shape=ellipse, style=filled, fillcolor=\"{1}\", label={2}];\n", node.id,
        node.entry < 0 ? "#f3f3f3" : "#ffffff", quoted(tensor_caption(node)));
  }
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    const TapeEntryView& e = graph.entries[k];
    dot += fmt::format(
        "  op{0} [id=\"op{0}\", shape=box, style=\"rounded,filled\", fillcolor=\"#dde8f5\", "
        "label={1}];\n",
        e.index, quoted(op_caption(e)));
    for (std::size_t input : graph.inputs[k]) {
      dot += fmt::format("  {} -> op{};\n", graph.tensors[input].id, e.index);
    }
    dot += fmt::format("  op{} -> {};\n", e.index, graph.tensors[graph.outputs[k]].id);
  }
  dot += "}\n";

  std::string folder = (std::filesystem::temp_directory_path() / "tapegrad-page-XXXXXX").string();
  if (mkdtemp(folder.data()) == nullptr) return std::nullopt;
  const std::filesystem::path in = std::filesystem::path(folder) / "graph.dot";
  const std::filesystem::path out = std::filesystem::path(folder) / "graph.svg";
  std::ofstream(in) << dot;
  const int status = std::system(
      fmt::format("dot -Tsvg '{}' -o '{}' 2> /dev/null", in.string(), out.string()).c_str());
  std::stringstream svg;
  svg << std::ifstream(out).rdbuf();
  std::filesystem::remove_all(folder);
  const std::string text = svg.str();
  const std::size_t begin = text.find("<svg");
  if (status != 0 || begin == std::string::npos) {
    logger().warn("to_html: Graphviz's dot failed; the page uses tapegrad's own layout");
    return std::nullopt;
  }
  return text.substr(begin);  // without the XML prolog and DOCTYPE, which inline SVG must not have
}

// tapegrad's own layout: leaves and constants one row above their first user, each op one row
// below the lowest of its inputs, its output below it; straight edges.
std::string layered_svg(const detail::Graph& graph) {
  struct Node {
    std::string id;
    std::string caption;
    bool op;
    int rank;
    double x = 0;
    double width = 0;
  };
  std::vector<int> tensor_rank(graph.tensors.size(), 1 << 20);
  std::vector<int> op_rank(graph.entries.size());
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    int rank = 1;
    for (std::size_t input : graph.inputs[k]) {
      if (graph.tensors[input].entry >= 0) rank = std::max(rank, tensor_rank[input] + 1);
    }
    op_rank[k] = rank;
    tensor_rank[graph.outputs[k]] = rank + 1;
  }
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    for (std::size_t input : graph.inputs[k]) {
      if (graph.tensors[input].entry < 0)
        tensor_rank[input] = std::min(tensor_rank[input], op_rank[k] - 1);
    }
  }

  std::vector<Node> nodes;
  std::map<std::string, std::size_t> node_of;
  const auto place = [&](const std::string& id, const std::string& caption, bool op, int rank) {
    if (node_of.count(id)) return;
    node_of[id] = nodes.size();
    nodes.push_back({id, caption, op, rank});
    nodes.back().width = std::max(72.0, 7.0 * double(caption.size()) + 28);
  };
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    for (std::size_t input : graph.inputs[k]) {
      const detail::GraphTensor& t = graph.tensors[input];
      place(t.id, tensor_caption(t), false, tensor_rank[input]);
    }
    place(fmt::format("op{}", graph.entries[k].index), op_caption(graph.entries[k]), true,
          op_rank[k]);
    const std::size_t out = graph.outputs[k];
    place(graph.tensors[out].id, tensor_caption(graph.tensors[out]), false, tensor_rank[out]);
  }

  constexpr double kGap = 24, kMargin = 16, kRowHeight = 64, kNodeHeight = 30;
  int ranks = 0;
  for (const Node& node : nodes) ranks = std::max(ranks, node.rank + 1);
  std::vector<double> row_width(std::size_t(ranks), -kGap);
  for (const Node& node : nodes) row_width[std::size_t(node.rank)] += node.width + kGap;
  const double width = *std::max_element(row_width.begin(), row_width.end()) + 2 * kMargin;
  const double height = ranks * kRowHeight + 2 * kMargin;
  std::vector<double> next_x(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) next_x[std::size_t(r)] = (width - row_width[std::size_t(r)]) / 2;
  for (Node& node : nodes) {
    node.x = next_x[std::size_t(node.rank)] + node.width / 2;
    next_x[std::size_t(node.rank)] += node.width + kGap;
  }
  const auto y_of = [&](const Node& node) { return kMargin + (node.rank + 0.5) * kRowHeight; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}pt\" height=\"{1:.0f}pt\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"13\">\n"
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" "
      "markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 "
      "L0,10 z\" fill=\"#777777\"/>"
      "</marker></defs>\n",
      width, height);
  const auto edge = [&](const std::string& from, const std::string& to) {
    const Node& a = nodes[node_of.at(from)];
    const Node& b = nodes[node_of.at(to)];
    svg += fmt::format(
        "<g class=\"edge\"><title>{}-&gt;{}</title><line x1=\"{:.1f}\" y1=\"{:.1f}\" "
        "x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#777777\" marker-end=\"url(#arrow)\"/></g>\n",
        from, to, a.x, y_of(a) + kNodeHeight / 2, b.x, y_of(b) - kNodeHeight / 2);
  };
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    const std::string op = fmt::format("op{}", graph.entries[k].index);
    for (std::size_t input : graph.inputs[k]) edge(graph.tensors[input].id, op);
    edge(op, graph.tensors[graph.outputs[k]].id);
  }
  for (const Node& node : nodes) {
    const double y = y_of(node);
    const std::string shape =
        node.op ? fmt::format(
                      "<polygon points=\"{0:.1f},{2:.1f} {1:.1f},{2:.1f} {1:.1f},{3:.1f} "
                      "{0:.1f},{3:.1f}\" fill=\"#dde8f5\" stroke=\"#333333\"/>",
                      node.x - node.width / 2, node.x + node.width / 2, y - kNodeHeight / 2,
                      y + kNodeHeight / 2)
                : fmt::format(
                      "<ellipse cx=\"{:.1f}\" cy=\"{:.1f}\" rx=\"{:.1f}\" ry=\"{:.1f}\" "
                      "fill=\"#ffffff\" stroke=\"#333333\"/>",
                      node.x, y, node.width / 2, kNodeHeight / 2);
    svg += fmt::format(
        "<g id=\"{0}\" class=\"node\"><title>{0}</title>{1}<text x=\"{2:.1f}\" y=\"{3:.1f}\" "
        "text-anchor=\"middle\">{4}</text></g>\n",
        node.id, shape, node.x, y + 4, xml_escape(node.caption));
  }
  return svg + "</svg>\n";
}

// ---- the page ----

// The page, with @TITLE@, @SVG@ and @DATA@ to fill in; defined at the end of this file.
std::string page_template();

// The template with each @MARKER@ in it replaced; inserted text is not searched again, so a
// tensor's name cannot inject anything.
std::string fill(const std::string& page, const std::map<std::string, std::string>& values) {
  std::string filled;
  std::size_t done = 0;
  std::size_t at = page.find('@');
  while (at != std::string::npos) {
    const std::size_t end = page.find('@', at + 1);
    if (end == std::string::npos) break;
    const auto value = values.find(page.substr(at, end + 1 - at));
    if (value == values.end()) {
      at = end;
      continue;
    }
    filled += page.substr(done, at - done) + value->second;
    done = end + 1;
    at = page.find('@', done);
  }
  return filled + page.substr(done);
}

}  // namespace

std::string to_html(const Tape& tape, const Tensor& loss, const TensorNames& names,
                    const HtmlOptions& options) {
  if (options.trace == nullptr) {
    const std::int64_t top = tape.index_of(loss);
    if (top < 0) fail("to_html: the loss was not recorded on this tape");
    if (tape.entry(top).freed) {
      fail(
          "to_html: backward already freed this graph's saved values, so the page cannot run it "
          "again; record that pass with a tg::BackwardTrace and pass it: "
          "to_html(tape, loss, names, {{.trace = &trace}})");
    }
    const BackwardTrace trace;
    grad(loss, {loss}, {}, {.retain_graph = true});
    HtmlOptions traced = options;
    traced.trace = &trace;
    return to_html(tape, loss, names, traced);
  }
  const detail::Graph graph = detail::collect_graph(tape, loss, names, "to_html");
  const std::vector<const BackwardStep*> pass = last_pass(*options.trace, tape.index_of(loss));
  std::map<std::int64_t, std::size_t> position;  // tape index -> position in graph.entries
  for (std::size_t k = 0; k < graph.entries.size(); ++k) position[graph.entries[k].index] = k;

  // Gradients as this pass computed them: an entry output's is the upstream gradient of its
  // step, a leaf's the sum of what every step sent it, added in the engine's order.
  const NoGradGuard no_grad;
  std::vector<Tensor> grads(graph.tensors.size());
  json backward = json::array();
  for (const BackwardStep* step : pass) {
    const auto found = position.find(step->entry);
    if (found == position.end() || std::strcmp(graph.entries[found->second].op, step->op) != 0) {
      fail("to_html: the trace's backward step for entry {} ('{}') is not this tape's", step->entry,
           step->op);
    }
    const std::size_t k = found->second;
    grads[graph.outputs[k]] = step->grad_output;
    json sent = json::array();
    for (std::size_t i = 0; i < step->grad_inputs.size(); ++i) {
      const Tensor& g = step->grad_inputs[i];
      if (!g.defined()) {
        sent.push_back(nullptr);
        continue;
      }
      const std::size_t target = graph.inputs[k][i];
      if (graph.tensors[target].entry < 0) {
        grads[target] = grads[target].defined() ? add(grads[target], g) : g;
      }
      sent.push_back({{"input", i}, {"tensor", target}, {"grad", value_json(g)}});
    }
    json item = {{"entry", k}, {"grad_output", value_json(step->grad_output)}, {"sent", sent}};
    if (std::strcmp(step->op, "softmax") == 0 && step->grad_inputs.size() == 1) {
      item["jacobian"] =
          softmax_jacobian(graph.entries[k].output, step->grad_output, step->grad_inputs[0]);
    }
    backward.push_back(std::move(item));
  }

  json tensors = json::array();
  for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
    const detail::GraphTensor& node = graph.tensors[i];
    const char* kind = node.entry >= 0                                        ? "output"
                       : node.tensor.defined() && node.tensor.requires_grad() ? "leaf"
                                                                              : "const";
    tensors.push_back({{"id", node.id},
                       {"label", node.label},
                       {"kind", kind},
                       {"entry", node.entry},
                       {"value", value_json(node.tensor)},
                       {"grad", value_json(grads[i])}});
  }
  SourceLines sources;
  json entries = json::array();
  for (std::size_t k = 0; k < graph.entries.size(); ++k) {
    const TapeEntryView& e = graph.entries[k];
    entries.push_back({{"index", e.index},
                       {"op", e.op},
                       {"formula", e.formula},
                       {"where", detail::where(e.location)},
                       {"source", sources.line(e.location)},
                       {"inputs", graph.inputs[k]},
                       {"output", graph.outputs[k]},
                       {"residuals", e.saved.size()},
                       {"freed", e.freed}});
  }
  const json data = {{"title", options.title},
                     {"loss", graph.outputs.back()},
                     {"tensors", tensors},
                     {"entries", entries},
                     {"backward", backward}};

  // '<' only occurs inside JSON strings, where \u003c means the same and cannot end the script.
  std::string embedded;
  for (char c : data.dump()) embedded += c == '<' ? std::string("\\u003c") : std::string(1, c);
  std::optional<std::string> svg;
  if (options.use_graphviz) svg = graphviz_svg(graph);
  return fill(page_template(), {{"@TITLE@", xml_escape(options.title)},
                                {"@SVG@", svg ? *svg : layered_svg(graph)},
                                {"@DATA@", embedded}});
}

namespace {

std::string page_template() {
  return R"page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
  :root { --ink: #1d2430; --muted: #5b6676; --line: #d5dae1; --fwd: #2f6fd6; --bwd: #c2410c; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--ink); background: #fafbfc;
         display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; align-items: center; gap: 12px; padding: 8px 16px;
           border-bottom: 1px solid var(--line); background: #fff; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0 12px 0 0; }
  header button { font: inherit; padding: 4px 12px; border: 1px solid var(--line); border-radius: 6px;
                  background: #fff; cursor: pointer; }
  header button:hover:not(:disabled) { background: #eef3fb; }
  header button:disabled { color: #aab; cursor: default; }
  #counter { color: var(--muted); min-width: 110px; }
  .help { color: var(--muted); font-size: 12px; margin-left: auto; }
  main { flex: 1; display: flex; min-height: 0; }
  #graph { flex: 1 1 55%; overflow: auto; padding: 12px; }
  aside { flex: 0 0 45%; max-width: 640px; overflow: auto; border-left: 1px solid var(--line);
          background: #fff; padding: 0 16px 16px; }
  h2 { font-size: 16px; margin: 14px 0 4px; }
  h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); font-weight: 600; }
  .phase { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px;
           margin-right: 6px; vertical-align: 2px; }
  .phase.forward { background: var(--fwd); }
  .phase.backward { background: var(--bwd); }
  .where { color: var(--muted); font-size: 12px; }
  pre.source { background: #f4f6f8; padding: 6px 8px; border-radius: 4px; margin: 6px 0;
               white-space: pre-wrap; font-size: 12px; }
  code { font-family: ui-monospace, monospace; }
  .rule code { background: #fff7e6; padding: 1px 4px; border-radius: 3px; }
  table.matrix { border-collapse: collapse; font: 12px ui-monospace, monospace; margin: 2px 0 6px; }
  table.matrix td { padding: 1px 7px; text-align: right; border-left: 1px solid #e4e7eb; }
  table.matrix td:first-child { border-left: 2px solid #8a93a0; }
  table.matrix td:last-child { border-right: 2px solid #8a93a0; }
  td.more { color: var(--muted); }
  .block { margin: 4px 0 8px; }
  .block .head { font-size: 13px; }
  .shape { color: var(--muted); font-size: 12px; }
  .note, .none { color: var(--muted); font-size: 12px; }
  button.chip { font: 12px ui-monospace, monospace; border: 1px solid #b9c6da; background: #f1f5fb;
                border-radius: 10px; padding: 0 7px; cursor: pointer; }
  .jacobian { border: 1px solid var(--line); border-radius: 6px; padding: 4px 10px; margin: 6px 0; }
  #inspector { border-top: 1px solid var(--line); margin-top: 14px; }
  #graph .node { cursor: pointer; }
  #graph .node.pending { opacity: 0.3; }
  #graph .node.current > :is(ellipse, polygon, path) { fill: #ffe08a; stroke-width: 2.5; }
  #graph .node.input > :is(ellipse, polygon, path) { fill: #cfe3ff; stroke: var(--fwd); stroke-width: 2; }
  #graph .node.output > :is(ellipse, polygon, path) { fill: #d7f5dd; stroke: #2a8a45; stroke-width: 2; }
  #graph .node.grad-from > :is(ellipse, polygon, path) { fill: #ffd9c2; stroke: var(--bwd); stroke-width: 2; }
  #graph .node.grad-to > :is(ellipse, polygon, path) { fill: #ffe9dc; stroke: var(--bwd); stroke-width: 2; }
  #graph .node.selected > :is(ellipse, polygon, path) { stroke: #7b2cbf; stroke-width: 3; stroke-dasharray: 4 2; }
  #graph .edge.active > path, #graph .edge.active > line { stroke: var(--fwd); stroke-width: 2.5; }
  #graph .edge.active > polygon { fill: var(--fwd); stroke: var(--fwd); }
  #graph .edge.active-back > path, #graph .edge.active-back > line { stroke: var(--bwd); stroke-width: 2.5; }
  #graph .edge.active-back > polygon { fill: var(--bwd); stroke: var(--bwd); }
</style>
</head>
<body>
<header>
  <h1>@TITLE@</h1>
  <button id="first" title="first step (Home)">« start</button>
  <button id="prev" title="previous step (←)">◀ back</button>
  <button id="next" title="next step (→)">next ▶</button>
  <button id="last" title="last step (End)">end »</button>
  <span id="counter"></span>
  <span class="help">← → step forward, then backward · click a tensor for its value and gradient</span>
</header>
<main>
  <div id="graph">@SVG@</div>
  <aside>
    <section id="step"></section>
    <section id="inspector"><p class="note">Click a tensor in the graph to see its value and gradient.</p></section>
  </aside>
</main>
<script type="application/json" id="tapegrad-data">@DATA@</script>
<script>
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('tapegrad-data').textContent);
  const num = (v) => (typeof v === 'string' ? Number(v) : v);
  const fmt = (v) => (Number.isFinite(v) && !Number.isInteger(v) ? String(Number(v.toPrecision(4))) : String(v));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const shapeText = (shape) => '[' + shape.join(', ') + ']';
  const maxRows = 12, maxCols = 12;

  function matrix(value) {
    if (!value) return '<div class="none">(freed)</div>';
    if (!value.values) {
      const s = value.summary;
      return `<div class="note">${shapeText(value.shape)} ${value.dtype}: min ${fmt(num(s.min))}, max ${fmt(num(s.max))}, mean ${fmt(num(s.mean))}</div>`;
    }
    const vals = value.values.map(num);
    if (vals.length === 0) return '<div class="none">(empty)</div>';
    const cols = value.shape.length === 0 ? 1 : value.shape[value.shape.length - 1];
    const rows = vals.length / cols;
    let html = '<table class="matrix">';
    for (let r = 0; r < Math.min(rows, maxRows); r++) {
      html += '<tr>';
      for (let c = 0; c < Math.min(cols, maxCols); c++) {
        const v = vals[r * cols + c];
        html += `<td data-v="${v}">${fmt(v)}</td>`;
      }
      if (cols > maxCols) html += `<td class="more">… ${cols - maxCols} more</td>`;
      html += '</tr>';
    }
    if (rows > maxRows) html += `<tr><td class="more" colspan="${Math.min(cols, maxCols)}">… ${rows - maxRows} more rows</td></tr>`;
    return html + '</table>';
  }
  const vector = (values) => matrix({ shape: [values.length], values });

  const chip = (t) => `<button class="chip" data-tensor="${t}">${esc(data.tensors[t].label)}</button>`;
  const shapeOf = (t) => {
    const v = data.tensors[t].value;
    return v ? `<span class="shape">${shapeText(v.shape)} ${v.dtype}</span>` : '<span class="shape">(freed)</span>';
  };

  const steps = [
    ...data.entries.map((_, k) => ({ kind: 'forward', entry: k })),
    ...data.backward.map((b, s) => ({ kind: 'backward', entry: b.entry, step: s })),
  ];
  const nodeOf = (id) => document.getElementById(id);
  const opId = (e) => 'op' + e.index;
  const edges = new Map();
  for (const g of document.querySelectorAll('#graph .edge')) {
    const title = g.querySelector('title');
    if (title) edges.set(title.textContent.trim(), g);
  }
  let current = 0;
  let selected = null;

  function jacobianHtml(j) {
    let html = `<h3>softmax: the explicit Jacobian beside the rule</h3>
      <p class="note">Along axis ${j.axis} (n = ${j.n}), ${j.slices.length} of ${j.total} slice(s).
      J = diag(s) − s sᵀ is an n×n matrix; the rule never forms it and computes
      <code>s ⊙ (g − ⟨g, s⟩)</code> in O(n).</p>`;
    j.slices.forEach((sl, i) => {
      const jg = sl.Jg.map(num), rule = sl.rule.map(num);
      const diff = Math.max(...jg.map((v, k) => Math.abs(v - rule[k])));
      html += `<div class="jacobian" data-slice="${i}">
        <h3>s</h3>${vector(sl.s)}
        <h3>J = diag(s) − s sᵀ</h3>${matrix({ shape: [j.n, j.n], values: sl.J })}
        <h3>g</h3>${vector(sl.g)}
        <div class="jg"><h3>Jᵀg, from the matrix: O(n²)</h3>${vector(sl.Jg)}</div>
        <div class="rule-result"><h3>s ⊙ (g − ⟨g, s⟩), the rule's gradient: O(n)</h3>${vector(sl.rule)}</div>
        <p class="note agree" data-diff="${diff}">largest difference: ${diff.toExponential(1)}</p></div>`;
    });
    return html;
  }

  function render() {
    const st = steps[current];
    const e = data.entries[st.entry];
    const panel = document.getElementById('step');
    panel.dataset.kind = st.kind;
    panel.dataset.entry = e.index;
    panel.dataset.step = current;
    document.getElementById('counter').textContent = `step ${current + 1} of ${steps.length}`;
    const out = data.tensors[e.output];
    let html = `<h2><span class="phase ${st.kind}">${st.kind}</span>#${e.index} ${esc(e.op)}</h2>
      <div class="where">recorded at ${esc(e.where)}</div>`;
    if (e.source) html += `<pre class="source">${esc(e.source)}</pre>`;
    html += `<div class="rule">backward rule (VJP): <code>${esc(e.formula)}</code></div>`;
    if (st.kind === 'forward') {
      html += '<h3>inputs</h3>';
      e.inputs.forEach((t, i) => {
        html += `<div class="block input" data-tensor="${t}"><div class="head">input ${i}: ${chip(t)} ${shapeOf(t)}</div>${matrix(data.tensors[t].value)}</div>`;
      });
      html += `<h3>output</h3><div class="block output" data-tensor="${e.output}"><div class="head">${chip(e.output)} ${shapeOf(e.output)}</div>${matrix(out.value)}</div>`;
      if (e.residuals > 0) {
        html += `<p class="note">saves ${e.residuals} value(s) for its backward rule${e.freed ? '; backward has since freed them' : ''}.</p>`;
      }
    } else {
      const b = data.backward[st.step];
      html += `<h3>upstream gradient g = ∂L/∂${esc(out.label)}</h3><div class="block upstream">${matrix(b.grad_output)}</div>`;
      html += '<h3>gradient sent to each input</h3>';
      e.inputs.forEach((t, i) => {
        const s = b.sent[i];
        html += s
          ? `<div class="block sent" data-tensor="${s.tensor}" data-input="${i}"><div class="head">input ${i} → ${chip(s.tensor)} ${shapeOf(s.tensor)}</div>${matrix(s.grad)}</div>`
          : `<div class="block"><div class="head">input ${i}: ${chip(t)} <span class="note">gets no gradient (a constant)</span></div></div>`;
      });
      if (b.jacobian) html += jacobianHtml(b.jacobian);
    }
    panel.innerHTML = html;
    highlight(st, e);
    document.getElementById('first').disabled = document.getElementById('prev').disabled = current === 0;
    document.getElementById('next').disabled = document.getElementById('last').disabled = current === steps.length - 1;
  }

  function highlight(st, e) {
    for (const n of document.querySelectorAll('#graph .node')) {
      n.classList.remove('current', 'input', 'output', 'grad-from', 'grad-to', 'pending');
    }
    for (const g of edges.values()) g.classList.remove('active', 'active-back');
    if (st.kind === 'forward') {
      data.entries.forEach((later, k) => {
        if (k <= st.entry) return;
        nodeOf(opId(later))?.classList.add('pending');
        nodeOf(data.tensors[later.output].id)?.classList.add('pending');
      });
    }
    nodeOf(opId(e))?.classList.add('current');
    const back = st.kind === 'backward';
    nodeOf(data.tensors[e.output].id)?.classList.add(back ? 'grad-from' : 'output');
    e.inputs.forEach((t, i) => {
      if (back && !data.backward[st.step].sent[i]) return;
      nodeOf(data.tensors[t].id)?.classList.add(back ? 'grad-to' : 'input');
      edges.get(`${data.tensors[t].id}->${opId(e)}`)?.classList.add(back ? 'active-back' : 'active');
    });
    edges.get(`${opId(e)}->${data.tensors[e.output].id}`)?.classList.add(back ? 'active-back' : 'active');
  }

  function inspect(t) {
    const tensor = data.tensors[t];
    const box = document.getElementById('inspector');
    box.dataset.tensor = tensor.id;
    box.dataset.label = tensor.label;
    const kind = { leaf: 'a leaf (requires grad)', const: 'a constant', output: `the output of entry #${tensor.entry}` }[tensor.kind];
    let html = `<h2>${esc(tensor.label)}</h2><div class="note">${kind} · ${shapeOf(t)}</div>
      <h3>value</h3><div class="value">${matrix(tensor.value)}</div>`;
    html += tensor.grad
      ? `<h3>gradient ∂L/∂${esc(tensor.label)}</h3><div class="grad">${matrix(tensor.grad)}</div>`
      : `<p class="note">no gradient: ${tensor.kind === 'const' ? 'a constant' : 'backward did not reach it'}</p>`;
    box.innerHTML = html;
    if (selected) nodeOf(selected)?.classList.remove('selected');
    selected = tensor.id;
    nodeOf(selected)?.classList.add('selected');
  }

  function go(k) {
    current = Math.max(0, Math.min(steps.length - 1, k));
    render();
    nodeOf(opId(data.entries[steps[current].entry]))?.scrollIntoView({ block: 'center', inline: 'center' });
  }

  // The graph grows to fill its pane, or shrinks to fit it down to 0.9 of its size; larger ones
  // scroll, following the current entry.
  function fitGraph() {
    const svg = document.querySelector('#graph svg');
    const box = svg.viewBox.baseVal;
    const pane = document.getElementById('graph');
    const scale = Math.max(0.9, Math.min(1.5, (pane.clientWidth - 24) / box.width, (pane.clientHeight - 24) / box.height));
    svg.setAttribute('width', box.width * scale);
    svg.setAttribute('height', box.height * scale);
  }
  fitGraph();
  window.addEventListener('resize', fitGraph);

  const tensorOfId = new Map(data.tensors.map((t, i) => [t.id, i]));
  const entryOfId = new Map(data.entries.map((e, k) => [opId(e), k]));
  for (const n of document.querySelectorAll('#graph .node')) {
    n.addEventListener('click', () => {
      if (tensorOfId.has(n.id)) inspect(tensorOfId.get(n.id));
      else if (entryOfId.has(n.id)) go(entryOfId.get(n.id));
    });
  }
  document.querySelector('aside').addEventListener('click', (event) => {
    const target = event.target.closest('button.chip');
    if (target) inspect(Number(target.dataset.tensor));
  });
  document.getElementById('first').addEventListener('click', () => go(0));
  document.getElementById('prev').addEventListener('click', () => go(current - 1));
  document.getElementById('next').addEventListener('click', () => go(current + 1));
  document.getElementById('last').addEventListener('click', () => go(steps.length - 1));
  document.addEventListener('keydown', (event) => {
    const moves = { ArrowRight: current + 1, ArrowDown: current + 1, ArrowLeft: current - 1,
                    ArrowUp: current - 1, Home: 0, End: steps.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    go(moves[event.key]);
  });
  go(0);
  inspect(data.loss);
})();
</script>
</body>
</html>
)page";
}

}  // namespace

}  // namespace tg

#pragma once
// Reading and comparing the reference fixtures (tests/reference/*.json, written by
// scripts/make_*reference.py): what tests/ops/reference_test.cpp and the families' own replays
// (conv, pool, norm, attention, the language ops, the CNN modules) share.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad.h"

namespace tg::test_support {

using nlohmann::json;

// A fixture file as make_reference.py lays it out: line 1 the header, whose "index" holds one
// [name, case, dtype] per case, line 2 `"cases":[`, then one case per line. Registering the tests
// reads the header alone and a test parses only its own case: every process of the test binary
// registers these tests, and parsing the whole suite each time would cost a second.
struct Fixture {
  json header;
  std::vector<std::string> case_lines;
};

inline const Fixture& fixture(const std::string& file) {
  static std::map<std::string, Fixture> loaded;
  if (auto it = loaded.find(file); it != loaded.end()) return it->second;
  const std::string path = std::string(TAPEGRAD_REFERENCE_DIR) + "/" + file;
  std::ifstream in(path);
  if (!in) fail("reference fixture {} cannot be read", path);
  Fixture f;
  std::string line;
  if (!std::getline(in, line) || line.empty() || line.back() != ',') {
    fail("reference fixture {}: line 1 is not the header", path);
  }
  line.back() = '}';
  f.header = json::parse(line);
  std::getline(in, line);  // "cases":[
  while (std::getline(in, line) && line != "]}") {
    if (!line.empty() && line.back() == ',') line.pop_back();
    f.case_lines.push_back(std::move(line));
  }
  if (f.case_lines.size() != f.header.at("index").size()) {
    fail("reference fixture {}: {} cases but {} index entries", path, f.case_lines.size(),
         f.header.at("index").size());
  }
  return loaded.emplace(file, std::move(f)).first->second;
}

inline json fixture_case(const std::string& file, std::size_t index) {
  return json::parse(fixture(file).case_lines.at(index));
}

// The cases of a fixture file as test parameters, and their test names "<i>_<op>_<case>_<dtype>"
// (every character but letters and digits made '_').
inline std::vector<std::size_t> case_indices(const std::string& file) {
  std::vector<std::size_t> out(fixture(file).case_lines.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}
inline std::string case_test_name(const std::string& file, std::size_t index) {
  const json& entry = fixture(file).header.at("index")[index];
  std::string name = std::to_string(index) + "_" + entry[0].get<std::string>() + "_" +
                     entry[1].get<std::string>() + "_" + entry[2].get<std::string>();
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

// Case `index` of `file` replayed by replay(case), which returns what differs ("" when it
// matches); an error thrown is a difference too.
template <class Replay>
void expect_case_matches(const std::string& file, std::size_t index, const Replay& replay) {
  const json c = fixture_case(file, index);
  std::string report;
  try {
    report = replay(c);
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what() + "\n";
  }
  EXPECT_TRUE(report.empty()) << c.at("op").get<std::string>() << ", case '"
                              << c.at("case").get<std::string>() << "', "
                              << c.at("dtype").get<std::string>() << ":\n"
                              << report;
}

// A fixture number: a JSON number, or "inf", "-inf", "nan".
inline double number(const json& v) {
  if (v.is_number()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  fail("reference fixture: '{}' is not a number", s);
}

inline std::vector<double> numbers(const json& array) {
  std::vector<double> out;
  out.reserve(array.size());
  for (const json& v : array) out.push_back(number(v));
  return out;
}

inline Shape shape_of(const json& dims) {
  return Shape(dims.get<std::vector<std::int64_t>>());
}

inline DType dtype_named(const std::string& name) {
  if (name == "float64") return f64;
  if (name == "float32") return f32;
  fail("reference fixture: unknown dtype {}", name);
}

// 1e-12 in float64, 4 ulps (4·2⁻²³) in float32.
inline double rtol(DType dtype) {
  return dtype == f64 ? 1e-12 : 4.0 * std::ldexp(1.0, -23);
}

// Compares `got` with an expected quantity ({"values", "scale"?}): an element passes when
// |got − expected| ≤ rtol·(|expected| + scale); non-finite values must match exactly. Returns
// what differs, one line per element (at most a few), empty when everything agrees.
inline std::string compare(const std::string& what, const Tensor& got, const json& expected,
                           const Shape& shape, DType dtype) {
  std::ostringstream out;
  if (!got.defined()) return what + ": no tensor\n";
  if (!(got.shape() == shape)) {
    return what + ": shape " + got.shape().str() + ", expected " + shape.str() + "\n";
  }
  if (got.dtype() != dtype) {
    return what + ": dtype " + std::string(dtype_name(got.dtype())) + ", expected " +
           std::string(dtype_name(dtype)) + "\n";
  }
  const std::vector<double> want = numbers(expected.at("values"));
  const std::vector<double> have = got.to_vector();
  if (want.size() != have.size()) return what + ": wrong number of values in the fixture\n";
  const std::vector<double> scale =
      expected.contains("scale") ? numbers(expected.at("scale")) : std::vector<double>(want.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = dtype == f32 ? double(static_cast<float>(want[i])) : want[i];
    const double g = have[i];
    const double tolerance = rtol(dtype) * (std::abs(e) + scale[i]);
    const bool ok = std::isfinite(e) ? std::isfinite(g) && std::abs(g - e) <= tolerance
                                     : (std::isnan(e) ? std::isnan(g) : g == e);
    if (ok) continue;
    if (++bad <= 4) {
      out << fmt::format("{} element [{}]: expected {}, got {} (|diff| {:.3g}, tolerance {:.3g})\n",
                         what, fmt::join(unravel_index(std::int64_t(i), shape), ", "), e, g,
                         std::abs(g - e), tolerance);
    }
  }
  if (bad > 4) out << fmt::format("{}: {} of {} elements differ\n", what, bad, want.size());
  return out.str();
}

// Replays an op record whose inputs are all floating: the output, the VJP of every input for the
// record's cotangent and, where the record has one, the second-order product ∇ₓ⟨gᵀJ, v⟩ for its
// direction v. `call` maps the record's "call" and the inputs to the op's output. Returns what
// differs, empty when everything agrees.
using RecordCall = std::function<Tensor(const json& call, const std::vector<Tensor>& inputs)>;
inline std::string replay_floating_op(const json& c, const RecordCall& call) {
  const DType dtype = dtype_named(c.at("dtype"));
  std::vector<Tensor> in;
  for (const json& x : c.at("inputs")) {
    in.push_back(
        from_vector(numbers(x.at("values")), shape_of(x.at("shape")), dtype).requires_grad(true));
  }
  const json& output = c.at("output");
  const Shape out_shape = shape_of(output.at("shape"));
  const bool second_order = c.contains("second_order");
  const Tensor y = call(c.at("call"), in);
  std::string report = compare("output", y, output, out_shape, dtype);
  if (!report.empty()) return report;
  const Tensor g = from_vector(numbers(c.at("cotangent")), out_shape, dtype);
  const std::vector<Tensor> vjps = grad(y, in, g, {.create_graph = second_order});
  for (std::size_t i = 0; i < in.size(); ++i) {
    report +=
        compare(fmt::format("vjp of input {}", i), vjps[i], c.at("vjp")[i], in[i].shape(), dtype);
  }
  if (!second_order) return report;
  Tensor s;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!vjps[i].requires_grad()) continue;
    const Tensor term =
        sum(vjps[i] * from_vector(numbers(c.at("direction")[i]), in[i].shape(), dtype));
    s = s.defined() ? s + term : term;
  }
  std::vector<Tensor> second;
  if (s.defined()) second = grad(s, in);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const Tensor h = s.defined() ? second[i] : zeros(in[i].shape(), dtype);
    report += compare(fmt::format("second order of input {}", i), h, c.at("second_order")[i],
                      in[i].shape(), dtype);
  }
  return report;
}

}  // namespace tg::test_support

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tapegrad.h"

namespace tg::nn {
namespace {

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "tapegrad_serialize_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// A file from a raw header and data, for the corrupt-file cases.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                      std::uint64_t header_length) {
  const std::string path = scratch(name);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&header_length), 8);
  out << header << data;
  return path;
}

std::string write_raw(const std::string& name, const std::string& header, const std::string& data) {
  return write_raw(name, header, data, header.size());
}

template <class Call>
void expect_error(Call call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "expected a tg::Error containing: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripIsBitwise) {
  Generator gen(3);
  const NamedTensors tensors = {{"weights", randn({3, 4}, gen)},
                                {"double", randn({2}, gen, f64)},
                                {"labels", int64_tensor({7, -1, 3})},
                                {"scalar", full({}, 2.5)},
                                {"empty", zeros({0, 3})}};
  const std::string path = scratch("round_trip.safetensors");
  save_safetensors(path, tensors);
  const NamedTensors loaded = load_safetensors(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(loaded[i].first, tensors[i].first);
    EXPECT_EQ(loaded[i].second.shape(), tensors[i].second.shape());
    EXPECT_EQ(loaded[i].second.dtype(), tensors[i].second.dtype());
    EXPECT_EQ(
        std::memcmp(loaded[i].second.raw_data(), tensors[i].second.raw_data(),
                    std::size_t(tensors[i].second.numel()) * dtype_size(tensors[i].second.dtype())),
        0);
  }
  // The layout of the format: an 8-byte length, a JSON header padded to 8 bytes, then the data.
  std::ifstream in(path, std::ios::binary);
  std::uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  EXPECT_EQ(length % 8, 0u);
  std::string header(length, ' ');
  in.read(header.data(), std::streamsize(length));
  EXPECT_EQ(
      header.rfind("{\"weights\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}", 0),
      0u)
      << header;
}

TEST(Safetensors, ModuleRoundTripAndMismatchesLeaveTheModuleUnchanged) {
  Generator a(1), b(2);
  auto trained = MLP({3, 4, 2}, Activation::relu, a);
  auto fresh = MLP({3, 4, 2}, Activation::relu, b);
  const std::string path = scratch("mlp.safetensors");
  save(*trained, path);
  load(*fresh, path);
  for (std::size_t i = 0; i < trained->parameters().size(); ++i) {
    EXPECT_EQ(trained->parameters()[i].to_vector(), fresh->parameters()[i].to_vector());
  }
  auto other_shape = MLP({3, 5, 2}, Activation::relu, b);
  const std::vector<double> before = other_shape->parameters()[0].to_vector();
  expect_error([&] { load(*other_shape, path); },
               "'0.weight' is float32 [4, 3] in the file but float32 [5, 3] in the module");
  EXPECT_EQ(other_shape->parameters()[0].to_vector(), before);
  EXPECT_EQ(other_shape->parameters()[3].to_vector(), other_shape->parameters()[3].to_vector());
  auto deeper = MLP({3, 4, 4, 2}, Activation::relu, b);
  expect_error([&] { load(*deeper, path); }, "missing '4.weight'");
  auto shallow = MLP({3, 2}, Activation::relu, b);
  expect_error([&] { load(*shallow, path); }, "unexpected '2.bias'");
  auto doubles = MLP({3, 4, 2}, Activation::relu, b, f64);
  expect_error([&] { load(*doubles, path); }, "is float32 [4, 3] in the file but float64 [4, 3]");
}

TEST(Safetensors, CorruptFilesRaiseClearErrors) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');
  EXPECT_NO_THROW(load_safetensors(write_raw("ok.safetensors", ok, eight)));
  expect_error(
      [&] { load_safetensors(write_raw("truncated.safetensors", ok, eight.substr(0, 5))); },
      "data offsets [0, 8] outside the 5 data bytes");
  {
    const std::string path = scratch("tiny.safetensors");
    std::ofstream(path) << "abc";
    expect_error([&] { load_safetensors(path); }, "too few for a header length");
  }
  expect_error([&] { load_safetensors(write_raw("absurd.safetensors", ok, eight, 1ull << 40)); },
               "is absurd");
  expect_error([&] { load_safetensors(write_raw("long.safetensors", ok, eight, 4096)); },
               "runs past the end");
  expect_error([&] { load_safetensors(write_raw("json.safetensors", "{\"a\": [", eight)); },
               "not valid JSON");
  expect_error([&] { load_safetensors(write_raw("array.safetensors", "[1, 2]", "")); },
               "not a JSON object");
  expect_error(
      [&] {
        load_safetensors(write_raw("dtype.safetensors",
                                   R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})",
                                   eight));
      },
      "dtype BF16");
  expect_error(
      [&] {
        load_safetensors(write_raw("bytes.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   eight));
      },
      "needs 12 bytes, its offsets give 8");
  expect_error(
      [&] {
        load_safetensors(write_raw("range.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                   eight));
      },
      "outside the 8 data bytes");
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "overlap.safetensors",
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            eight));
      },
      "overlapping or with a gap");
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "gap.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight));
      },
      "cover 4 of the 8 data bytes");
  expect_error(
      [&] {
        load_safetensors(write_raw("shape.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                                   eight));
      },
      "not a non-negative integer");
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "huge.safetensors",
            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
            eight));
      },
      "more elements than the file holds");
  expect_error(
      [&] {
        load_safetensors(
            write_raw("offsets.safetensors", R"({"a":{"dtype":"F32","shape":[2]}})", eight));
      },
      "needs data_offsets");
  expect_error([&] { load_safetensors(scratch("does_not_exist.safetensors")); }, "cannot open");
  // Metadata is allowed and ignored.
  EXPECT_EQ(
      load_safetensors(
          write_raw(
              "metadata.safetensors",
              R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
              eight))
          .size(),
      1u);
}

}  // namespace
}  // namespace tg::nn

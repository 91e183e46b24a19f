#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

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

// A float and an int64 buffer beside a parameter, as BatchNorm's running statistics and count.
struct Normalizer : Module {
  Normalizer(double mean, std::int64_t seen) {
    register_parameter("weight", weight, full({2}, 1.5));
    register_buffer("running_mean", running_mean, full({2}, mean));
    register_buffer("num_batches_tracked", num_batches_tracked, int64_tensor({seen}, {}));
  }
  Tensor forward(const Tensor& x) override { return (x - running_mean) * weight; }
  Tensor weight;
  Tensor running_mean;
  Tensor num_batches_tracked;
};

TEST(Safetensors, BuffersRoundTripUnderStateDictNames) {
  Generator gen(3);
  Sequential saved(std::make_shared<Linear>(3, 2, true, gen),
                   std::make_shared<Normalizer>(0.25, 7));
  const std::string path = scratch("buffers.safetensors");
  save(saved, path);
  const NamedTensors file = load_safetensors(path);
  std::vector<std::string> names;
  for (const auto& [name, t] : file) names.push_back(name);
  std::sort(names.begin(), names.end());  // the header is a JSON object: its order is not kept
  EXPECT_EQ(names, std::vector<std::string>({"0.bias", "0.weight", "1.num_batches_tracked",
                                             "1.running_mean", "1.weight"}));

  Sequential loaded(std::make_shared<Linear>(3, 2, true, gen), std::make_shared<Normalizer>(-1, 0));
  const Tensor mean = loaded.named_buffers()[0].second;
  load(loaded, path);
  const auto want = saved.state_dict();
  const auto got = loaded.state_dict();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second.to_vector(), want[i].second.to_vector()) << got[i].first;
    EXPECT_EQ(got[i].second.dtype(), want[i].second.dtype()) << got[i].first;
  }
  EXPECT_EQ(mean.to_vector(), std::vector<double>({0.25, 0.25}));  // into the buffer's storage
  EXPECT_EQ(loaded.named_buffers()[1].second.to_vector(), std::vector<double>({7}));

  // A file of parameters only (before buffers were saved) does not fill the buffers.
  const std::string parameters_only = scratch("parameters_only.safetensors");
  save_safetensors(parameters_only, saved.named_parameters());
  Sequential other(std::make_shared<Linear>(3, 2, true, gen), std::make_shared<Normalizer>(-1, 0));
  const std::vector<double> before = other.parameters()[0].to_vector();
  expect_error([&] { load(other, parameters_only); },
               "missing '1.running_mean'; missing '1.num_batches_tracked'");
  EXPECT_EQ(other.parameters()[0].to_vector(), before);
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
  expect_error([&] { load_safetensors(write_raw("json.safetensors", "{\"a\": {", eight)); },
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
      "huge.safetensors: tensor 'a' has shape [4294967296,4294967296]: its non-zero dimensions "
      "hold more than 2^63 - 1 bytes of F32");
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

// A header of `text` and no data, in memory.
std::vector<std::byte> header_only(const std::string& text) {
  std::vector<std::byte> bytes(8 + text.size());
  const std::uint64_t length = text.size();
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, text.data(), text.size());
  return bytes;
}

template <class Call>
double seconds(Call call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(Safetensors, HostileHeadersAreRefusedAsTheyAreRead) {
  // 80 MB of nested arrays took 3 GB and 15 s to reject when the header was parsed whole; now
  // they are refused at their first bytes (8 MB here, to keep the test quick under ASan).
  const auto parse = [](const std::vector<std::byte>& bytes) {
    return [&bytes] { parse_safetensors(bytes, "hostile"); };
  };
  const std::vector<std::byte> arrays = header_only(std::string(8'000'000, '['));
  EXPECT_LT(seconds([&] { expect_error(parse(arrays), "the header is not a JSON object"); }), 1.0);
  const std::vector<std::byte> nested =
      header_only("{\"__metadata__\":" + std::string(8'000'000, '['));
  EXPECT_LT(seconds([&] { expect_error(parse(nested), "nests deeper than 8 levels"); }), 1.0);
  std::string numbers = R"({"a":{"dtype":"F32","shape":[)";
  for (int i = 0; i < 100'000; ++i) numbers += "0,";
  const std::vector<std::byte> long_shape = header_only(numbers + "0]}}");
  EXPECT_LT(seconds([&] { expect_error(parse(long_shape), "more than 8 numbers in 'shape'"); }),
            1.0);
  // Skipped as they are read, never stored.
  std::string arrays_in_metadata = R"({"__metadata__":{"x":[)";
  for (int i = 0; i < 100'000; ++i) arrays_in_metadata += "[],";
  const std::vector<std::byte> skipped_arrays = header_only(arrays_in_metadata + "[]]}}");
  EXPECT_LT(seconds([&] { EXPECT_TRUE(parse_safetensors(skipped_arrays, "skipped").empty()); }),
            1.0);
  expect_error(parse(header_only(R"({"a":[1]})")), "header entry 'a' is not an object");
  expect_error(parse(header_only(R"({"a":{"shape":{"0":1}}})")), "nested object in 'shape'");
  expect_error(parse(header_only(R"({"a":{"shape":[[1]]}})")), "nested array in 'shape'");
  const std::string entry = R"({"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  expect_error(parse(header_only("{\"a\":" + entry + ",\"a\":" + entry + "}")),
               "tensor 'a' appears twice");
  // Metadata and fields tapegrad does not read are skipped, however long, if not too deep.
  std::string skipped = R"({"__metadata__":{"format":"pt","list":[[1,2],{"b":3}]},"a":{"x":[)";
  for (int i = 0; i < 100'000; ++i) skipped += "1,";
  skipped += R"(1],"dtype":"F32","shape":[0],"data_offsets":[0,0],"y":{"z":[true]}}})";
  const NamedTensors loaded = parse_safetensors(header_only(skipped), "skipped");
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].second.shape(), Shape({0}));
  expect_error(parse(header_only(R"({"__metadata__":{"x":[[[[[[[[1]]]]]]]]}})")),
               "nests deeper than 8 levels");
}

TEST(Safetensors, ShapesWhoseSizeOverflowsAreRefused) {
  // Loaded as an empty tensor, it made sum over axis 0 a [2^31, 2^31] result.
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "zero_dim.safetensors",
            R"({"w":{"dtype":"F32","shape":[0,2147483648,2147483648],"data_offsets":[0,0]}})", ""));
      },
      "zero_dim.safetensors: tensor 'w' has shape [0,2147483648,2147483648]: its non-zero "
      "dimensions hold more than 2^63 - 1 bytes of F32");
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "int64_max.safetensors",
            R"({"w":{"dtype":"I64","shape":[0,9223372036854775807],"data_offsets":[0,0]}})", ""));
      },
      "int64_max.safetensors: tensor 'w' has shape [0,9223372036854775807]");
  expect_error(
      [&] {
        load_safetensors(write_raw(
            "2_63.safetensors",
            R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})", ""));
      },
      "tensor 'w' has a shape entry that is not a non-negative integer");
  const NamedTensors empty_ok = load_safetensors(
      write_raw("zero_dim_ok.safetensors",
                R"({"w":{"dtype":"F64","shape":[3,0,1000000],"data_offsets":[0,0]}})", ""));
  EXPECT_EQ(empty_ok[0].second.shape(), Shape({3, 0, 1000000}));
}

// A fresh, empty directory for one test.
std::filesystem::path fresh_directory(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("tapegrad_serialize_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<std::string> listing(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Safetensors, OnlyRegularFilesAreRead) {
  const auto dir = fresh_directory("not_regular");
  expect_error([&] { load_safetensors(dir.string()); },
               dir.string() + " is a directory, not a regular file");
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading blocked until a writer came, forever in practice.
  expect_error([&] { load_safetensors(fifo); }, fifo + " is a FIFO, not a regular file");
  expect_error([] { load_safetensors("/dev/zero"); },
               "/dev/zero is a character device, not a regular file");
  Generator gen(1);
  auto model = MLP({2, 2}, Activation::relu, gen);
  expect_error([&] { load(*model, dir.string()); }, "is a directory");
}

TEST(Safetensors, SaveRefusesNamesThatAreNotUtf8) {
  const auto dir = fresh_directory("utf8");
  const std::string path = (dir / "bad.safetensors").string();
  expect_error(
      [&] {
        save_safetensors(path, {{"caf\xc3\xa9", zeros({1})}, {"w\xff", zeros({1})}});
      },
      path + ": tensor name \"w\\xff\" is not valid UTF-8");
  EXPECT_TRUE(listing(dir).empty());
  save_safetensors(path, {{"caf\xc3\xa9", zeros({1})}});
  EXPECT_EQ(load_safetensors(path)[0].first, "caf\xc3\xa9");
}

TEST(Safetensors, SaveReplacesTheFileWholeOrNotAtAll) {
  const auto dir = fresh_directory("replace");
  const std::string path = (dir / "model.safetensors").string();
  save_safetensors(path, {{"a", full({2}, 1.0)}});
  save_safetensors(path, {{"a", full({3}, 2.0)}});
  EXPECT_EQ(load_safetensors(path)[0].second.to_vector(), std::vector<double>({2, 2, 2}));
  EXPECT_EQ(listing(dir), std::vector<std::string>({"model.safetensors"}));
  expect_error([&] { save_safetensors((dir / "missing" / "m.safetensors").string(), {}); },
               "No such file or directory");
  expect_error([&] { save_safetensors(dir.string(), {}); },
               "cannot replace " + dir.string() + ": Is a directory");
  EXPECT_EQ(listing(dir), std::vector<std::string>({"model.safetensors"}));
}

// The previous file, loaded, equals `expected`, and nothing else is left in its directory.
void expect_intact(const std::filesystem::path& dir, const std::string& path,
                   const std::vector<double>& expected) {
  EXPECT_EQ(load_safetensors(path)[0].second.to_vector(), expected);
  EXPECT_EQ(listing(dir), std::vector<std::string>({"model.safetensors"}));
}

TEST(Safetensors, SaveOverAFileSizeLimitKeepsThePreviousFileAndSaysWhy) {
  const auto dir = fresh_directory("fsize");
  const std::string path = (dir / "model.safetensors").string();
  save_safetensors(path, {{"a", full({2}, 1.0)}});
  int channel[2];
  ASSERT_EQ(pipe(channel), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Ignored, SIGXFSZ turns into EFBIG from write() instead of killing the process.
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &limit);
    std::string message = "no error";
    try {
      save_safetensors(path, {{"a", zeros({1 << 20})}});
    } catch (const Error& e) {
      message = e.what();
    }
    (void)!write(channel[1], message.data(), message.size());
    _exit(0);
  }
  close(channel[1]);
  std::string message;
  char buffer[512];
  for (ssize_t n; (n = read(channel[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
  close(channel[0]);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(message, "save_safetensors: writing " + path + " failed: File too large");
  expect_intact(dir, path, {1, 1});
}

TEST(Safetensors, SaveKilledMidWriteKeepsThePreviousFile) {
  const auto dir = fresh_directory("killed");
  const std::string path = (dir / "model.safetensors").string();
  save_safetensors(path, {{"a", full({2}, 1.0)}});
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    save_safetensors(path, {{"a", zeros({1 << 24})}});  // 64 MiB
    _exit(0);
  }
  // Waits until the child has a partly written file in `dir` open, then kills it.
  const auto fds = "/proc/" + std::to_string(child) + "/fd";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool writing = false;
  while (!writing && std::chrono::steady_clock::now() < deadline) {
    std::error_code ignored;
    for (const auto& fd : std::filesystem::directory_iterator(fds, ignored)) {
      std::error_code error;
      const auto target = std::filesystem::read_symlink(fd.path(), error);
      const auto size = std::filesystem::file_size(fd.path(), error);
      if (!error && target.parent_path() == dir && size > 0) writing = true;
    }
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(writing) << "the save ended before it could be interrupted";
  ASSERT_TRUE(WIFSIGNALED(status));
  expect_intact(dir, path, {1, 1});
}

}  // namespace
}  // namespace tg::nn

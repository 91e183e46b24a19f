#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>

#include "tapegrad.h"

namespace tg::nn {
namespace {

const std::string kData = TAPEGRAD_TEST_DATA;

std::string write_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

TEST(Csv, LoadsIrisAndGzippedDigits) {
  const Dataset iris = load_csv(kData + "/iris.csv", {.skip_lines = 1});
  EXPECT_EQ(iris.features.shape(), Shape({150, 4}));
  EXPECT_EQ(iris.labels.shape(), Shape({150}));
  EXPECT_NEAR(iris.features.at({0, 0}), 5.1, 1e-6);
  EXPECT_EQ(iris.labels.at({149}), 2.0);
  const Dataset digits = load_csv(kData + "/digits.csv.gz", {.dtype = f64});
  EXPECT_EQ(digits.features.shape(), Shape({1797, 64}));
  EXPECT_EQ(digits.features.dtype(), f64);
  std::set<double> classes;
  for (double y : digits.labels.to_vector()) classes.insert(y);
  EXPECT_EQ(classes.size(), 10u);
}

TEST(Csv, MalformedRowsNameTheFileLineAndColumn) {
  const auto expect_error = [](const std::string& text, const std::string& fragment) {
    const std::string path = write_file("tapegrad_bad.csv", text);
    try {
      load_csv(path);
      ADD_FAILURE() << "expected an error for: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tapegrad_bad.csv"), std::string::npos) << e.what();
    }
  };
  expect_error("1,2,0\n3,x,1\n", "tapegrad_bad.csv:2:2: 'x' is not a finite number");
  expect_error("1,2,0\n3,4\n", ":2: 2 columns where the first row has 3");
  expect_error("1,2,0\n3,4,1.5\n", ":2:3: label 1.5 is not a non-negative integer");
  expect_error("1,2,0\n3,,1\n", ":2:2: '' is not a finite number");
  expect_error("1,2,0\n3,nan,1\n", ":2:2: 'nan' is not a finite number");
  expect_error("\n\n", "has no data rows");
  // Found by fuzzing: converting a huge label to int64 was undefined behaviour.
  expect_error("1,2,0\n3,4,1e30\n", ":2:3: label 1e+30 is not a non-negative integer");
  const Dataset ok = load_csv(write_file("tapegrad_ok.csv", " 1 , 2 ,0\r\n3,4,1\n\n"));
  EXPECT_EQ(ok.features.to_vector(), std::vector<double>({1, 2, 3, 4}));
}

// One gzip member holding `text`.
std::string gzip(const std::string& text) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&stream, uLong(text.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = uInt(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string repeat(const std::string& text, int times) {
  std::string out;
  out.reserve(text.size() * std::size_t(times));
  for (int i = 0; i < times; ++i) out += text;
  return out;
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

TEST(Csv, GzipBombsFailFastOnTheLimits) {
  // 1,024 members of 1 MiB each: 1 GiB of text (2^28 rows) in about 1 MB, as concatenated
  // members are one stream.
  const std::string rows =
      write_file("tapegrad_rows_bomb.csv.gz", repeat(gzip(repeat("0,0\n", 1 << 18)), 1024));
  const std::string line =
      write_file("tapegrad_line_bomb.csv.gz", repeat(gzip(std::string(1 << 20, '1')), 1024));
  // One endless line stops at the default 1 MiB line length.
  expect_error([&] { load_csv(line); },
               "tapegrad_line_bomb.csv.gz:1: the line is longer than 1048576 bytes");
  expect_error([&] { load_csv(rows, {.max_rows = 1000}); },
               "tapegrad_rows_bomb.csv.gz:1001: more than 1000 rows");
  expect_error([&] { load_csv(rows, {.max_bytes = 1 << 20}); },
               "tapegrad_rows_bomb.csv.gz: more than 1048576 bytes of text");
  expect_error(
      [&] { load_csv(write_file("tapegrad_long.csv", "1,0\n12345,0\n"), {.max_line_bytes = 4}); },
      "tapegrad_long.csv:2: the line is longer than 4 bytes");
  EXPECT_EQ(load_csv(write_file("tapegrad_short.csv", "1,0\n12,0\n"), {.max_line_bytes = 4}).size(),
            2);
}

TEST(Csv, GzipMembersConcatenateAndNothingMayFollowThem) {
  const std::string two = gzip("1,2,0\n") + gzip("3,4,1\n");
  const Dataset both = load_csv(write_file("tapegrad_members.csv.gz", two));
  EXPECT_EQ(both.features.to_vector(), std::vector<double>({1, 2, 3, 4}));
  EXPECT_EQ(both.labels.to_vector(), std::vector<double>({0, 1}));
  expect_error([&] { load_csv(write_file("tapegrad_trailing.csv.gz", two + "garbage")); },
               "tapegrad_trailing.csv.gz: 7 bytes after the end of the gzip data are not gzip");
  expect_error([&] { load_csv(write_file("tapegrad_trailing_magic.csv.gz", two + "\x1f?x")); },
               "tapegrad_trailing_magic.csv.gz: corrupt gzip data");
  expect_error(
      [&] { load_csv(write_file("tapegrad_truncated.csv.gz", two.substr(0, two.size() - 3))); },
      "tapegrad_truncated.csv.gz: the gzip data is truncated");
  std::string corrupt = two;
  corrupt[12] = char(corrupt[12] ^ 0x55);
  EXPECT_THROW(load_csv(write_file("tapegrad_corrupt.csv.gz", corrupt)), Error);
}

TEST(Csv, NulBytesAndByteOrderMarks) {
  // The NUL ended the line early: "3,4" with label... the "1" of the next line.
  expect_error(
      [&] { load_csv(write_file("tapegrad_nul.csv", std::string("3,4\0garbage\n,1\n", 15))); },
      "tapegrad_nul.csv:1: a NUL byte at byte 4 of the line");
  const Dataset bom = load_csv(write_file("tapegrad_bom.csv",
                                          "\xEF\xBB\xBF"
                                          "1,2,0\n3,4,1\n"));
  EXPECT_EQ(bom.features.to_vector(), std::vector<double>({1, 2, 3, 4}));
  const Dataset bom_header =
      load_csv(write_file("tapegrad_bom_header.csv", "\xEF\xBB\xBFx,y\n5,1\n"), {.skip_lines = 1});
  EXPECT_EQ(bom_header.features.to_vector(), std::vector<double>({5}));
  // Only at the start of the file.
  expect_error(
      [&] {
        load_csv(write_file("tapegrad_bom2.csv",
                            "1,0\n\xEF\xBB\xBF"
                            "2,0\n"));
      },
      "tapegrad_bom2.csv:2:1: '\xEF\xBB\xBF"
      "2' is not a finite number");
}

TEST(Csv, OnlyRegularFilesAreRead) {
  const auto dir = std::filesystem::temp_directory_path() / "tapegrad_data_not_regular";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  expect_error([&] { load_csv(dir.string()); }, " is a directory, not a regular file");
  const std::string fifo = (dir / "fifo.csv").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { load_csv(fifo); }, fifo + " is a FIFO, not a regular file");
  // Never returned: an endless stream of empty lines.
  expect_error([] { load_csv("/dev/zero"); }, "/dev/zero is a character device");
  expect_error([] { load_csv("/nonexistent/file.csv"); },
               "/nonexistent/file.csv: No such file or directory");
}

TEST(DataLoader, HugeBatchSizesDoNotOverflow) {
  const Dataset iris = load_csv(kData + "/iris.csv", {.skip_lines = 1});
  for (const std::int64_t size : {std::int64_t(150), std::int64_t(151), INT64_MAX - 1, INT64_MAX}) {
    DataLoader loader(iris, size, true, 1);
    EXPECT_EQ(loader.batches(), 1);
    std::int64_t batches = 0;
    for (const Dataset& batch : loader) {
      EXPECT_EQ(batch.size(), 150);
      ++batches;
    }
    EXPECT_EQ(batches, 1);
  }
  DataLoader two(iris, 149, false);
  EXPECT_EQ(two.batches(), 2);
  std::vector<std::int64_t> sizes;
  for (const Dataset& batch : two) sizes.push_back(batch.size());
  EXPECT_EQ(sizes, std::vector<std::int64_t>({149, 1}));
}

TEST(Split, SeededAndDisjoint) {
  const Dataset iris = load_csv(kData + "/iris.csv", {.skip_lines = 1});
  const auto [train, test] = train_test_split(iris, 0.2, 42);
  EXPECT_EQ(train.size(), 120);
  EXPECT_EQ(test.size(), 30);
  const auto [train2, test2] = train_test_split(iris, 0.2, 42);
  EXPECT_EQ(train.features.to_vector(), train2.features.to_vector());
  const auto [train3, test3] = train_test_split(iris, 0.2, 43);
  EXPECT_NE(train.features.to_vector(), train3.features.to_vector());
  EXPECT_THROW(train_test_split(iris, 1.0, 0), Error);
}

TEST(Standardizer, GivesZeroMeanUnitSpreadOnTheTrainingSet) {
  const Dataset digits = load_csv(kData + "/digits.csv.gz", {.dtype = f64});
  const Tensor z = Standardizer(digits.features)(digits.features);
  const std::vector<double> means = mean(z, 0).to_vector();
  const std::vector<double> spread = mean(z * z, 0).to_vector();
  for (std::size_t j = 0; j < means.size(); ++j) {
    EXPECT_NEAR(means[j], 0.0, 1e-12);
    // Constant pixels (always 0) are only centred.
    EXPECT_TRUE(std::abs(spread[j] - 1.0) < 1e-9 || spread[j] == 0.0) << j;
  }
}

TEST(DataLoader, CoversEveryRowOncePerEpochAndReshuffles) {
  const Dataset iris = load_csv(kData + "/iris.csv", {.skip_lines = 1});
  DataLoader loader(iris, 32, true, 1);
  EXPECT_EQ(loader.batches(), 5);
  std::vector<double> first_epoch;
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<double> labels;
    std::vector<double> firsts;
    std::int64_t rows = 0;
    for (const Dataset& batch : loader) {
      rows += batch.size();
      EXPECT_LE(batch.size(), 32);
      for (double y : batch.labels.to_vector()) labels.insert(y);
      firsts.push_back(batch.features.at({0, 0}));
    }
    EXPECT_EQ(rows, 150);
    EXPECT_EQ(labels.count(0.0), 50u);
    if (epoch == 0)
      first_epoch = firsts;
    else
      EXPECT_NE(firsts, first_epoch);
  }
  EXPECT_THROW(DataLoader(iris, 0, false), Error);
}

TEST(Accuracy, CountsArgMaxHits) {
  EXPECT_DOUBLE_EQ(accuracy(tensor({{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}}), int64_tensor({1, 0, 0})),
                   2.0 / 3.0);
  EXPECT_THROW(accuracy(tensor({0.1, 0.9}), int64_tensor({1})), Error);
}

TEST(Text, LoadsPlainAndGzippedTextWhole) {
  const std::string text = std::string("First Citizen:\nBefore we proceed\0 any further", 46);
  EXPECT_EQ(load_text(write_file("tapegrad_text.txt", text)), text);
  EXPECT_EQ(load_text(write_file("tapegrad_text.txt.gz", gzip(text) + gzip("!"))), text + "!");
  const std::string shakespeare = load_text(kData + "/tinyshakespeare.txt.gz");
  EXPECT_EQ(shakespeare.size(), 1115394u);
  EXPECT_EQ(shakespeare.substr(0, 14), "First Citizen:");
  try {
    load_text(write_file("tapegrad_text_bomb.txt.gz", gzip(std::string(1 << 20, 'a'))), 1000);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tapegrad_text_bomb.txt.gz: more than 1000 bytes of text"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tg::nn

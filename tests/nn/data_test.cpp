#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tapegrad.h"

namespace tg::nn {
namespace {

const std::string kData = TAPEGRAD_TEST_DATA;

std::string write_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
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
  EXPECT_THROW(load_csv("/nonexistent/file.csv"), Error);
  const Dataset ok = load_csv(write_file("tapegrad_ok.csv", " 1 , 2 ,0\r\n3,4,1\n\n"));
  EXPECT_EQ(ok.features.to_vector(), std::vector<double>({1, 2, 3, 4}));
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

}  // namespace
}  // namespace tg::nn

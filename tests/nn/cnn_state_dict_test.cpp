// A CNN's parameter file crosses between PyTorch and tapegrad in both directions
// (tests/reference/digits_cnn.*, written by scripts/make_cnn_state_dict_reference.py): PyTorch's
// state_dict of train_digits_cnn's network, saved after three training steps, loads into
// digits::make_cnn and gives PyTorch's outputs in evaluation and in training (and the same
// running-statistics update); the file tapegrad writes holds PyTorch's names, dtypes, shapes and
// bytes, in PyTorch's order.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "examples/digits_training.h"
#include "tapegrad.h"

namespace tg::nn {
namespace {

using nlohmann::json;

const std::string kReference = std::string(TAPEGRAD_REFERENCE_DIR) + "/digits_cnn";

json fixture() {
  std::ifstream in(kReference + ".json");
  return json::parse(in);
}

std::shared_ptr<Sequential> load_pytorch_model() {
  Generator generator(1);
  auto model = digits::make_cnn(16, generator);
  load(*model, kReference + ".safetensors");
  return model;
}

// float32 outputs of a different summation order: a few ulps of the largest term.
void expect_near_all(const std::vector<double>& got, const std::vector<double>& want,
                     const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 2e-5 * (1 + std::abs(want[i]))) << what << " [" << i << "]";
  }
}

TEST(CnnStateDict, PyTorchsFileGivesPyTorchsOutputsInEvaluationAndTraining) {
  const json reference = fixture();
  auto model = load_pytorch_model();
  const Tensor x = from_vector(reference["input"].get<std::vector<double>>(), {4, 1, 8, 8});
  model->eval();
  expect_near_all(model->forward(x).to_vector(), reference["eval_logits"], "evaluation");

  model->train();
  {
    NoGradGuard no_grad;
    expect_near_all(model->forward(x).to_vector(), reference["train_logits"], "training");
  }
  auto norm = model->at<BatchNorm2d>(1);
  expect_near_all(norm->running_mean.to_vector(), reference["running_mean_after_train_forward"],
                  "running_mean");
  expect_near_all(norm->running_var.to_vector(), reference["running_var_after_train_forward"],
                  "running_var");
  EXPECT_EQ(norm->num_batches_tracked.dtype(), i64);
  EXPECT_EQ(
      norm->num_batches_tracked.to_vector(),
      std::vector<double>{reference["num_batches_tracked_after_train_forward"].get<double>()});
}

TEST(CnnStateDict, TapegradsFileHoldsPyTorchsNamesDtypesShapesAndBytes) {
  const NamedTensors pytorch = load_safetensors(kReference + ".safetensors");
  auto model = load_pytorch_model();
  const std::string path =
      (std::filesystem::temp_directory_path() / "tapegrad_cnn_state_dict_test.safetensors")
          .string();
  save(*model, path);
  const NamedTensors ours = load_safetensors(path);
  std::filesystem::remove(path);
  ASSERT_EQ(ours.size(), pytorch.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE(pytorch[i].first);
    EXPECT_EQ(ours[i].first, pytorch[i].first);
    EXPECT_EQ(ours[i].second.dtype(), pytorch[i].second.dtype());
    EXPECT_EQ(ours[i].second.shape(), pytorch[i].second.shape());
    EXPECT_EQ(ours[i].second.to_vector(), pytorch[i].second.to_vector());
  }
}

}  // namespace
}  // namespace tg::nn

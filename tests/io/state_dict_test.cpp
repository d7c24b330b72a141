// load_state_dict: strict name-by-name binding of a checkpoint to a torch::nn::Module.
#include "io/state_dict.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "internvl/error.h"
#include "io/safetensors.h"
#include "io/tensor_convert.h"

using internvl::CheckpointError;
using internvl::io::Checkpoint;
using internvl::io::LoadOptions;
using internvl::io::LoadReport;
using internvl::io::load_state_dict;

namespace {

// ---- test-only safetensors writer ----------------------------------------------------------

const char* safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kBFloat16: return "BF16";
    case at::kHalf: return "F16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: throw std::runtime_error("test writer: unsupported dtype");
  }
}

// Writes `tensors` (widest dtype first, as the format's writer does) to a fresh file.
std::string write_checkpoint(const std::map<std::string, at::Tensor>& tensors, const std::string& file_name) {
  std::vector<std::pair<std::string, at::Tensor>> order(tensors.begin(), tensors.end());
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second.element_size() > b.second.element_size(); });
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const auto& [name, tensor] : order) {
    const auto t = tensor.contiguous().cpu();
    const std::size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
    header[name] = {{"dtype", safetensors_dtype(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  std::string dir = ::testing::TempDir();
  if (!dir.empty() && dir.back() != '/') dir += '/';
  dir += "internvl_state_dict_XXXXXX";
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/" + file_name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << text << data;
  EXPECT_TRUE(out.good());
  return path;
}

// ---- a tiny module -------------------------------------------------------------------------

struct BlockImpl : torch::nn::Module {
  BlockImpl() {
    proj = register_module("proj", torch::nn::Linear(3, 2));
    scale = register_parameter("scale", at::ones({2}));
  }
  torch::nn::Linear proj{nullptr};
  at::Tensor scale;
};
TORCH_MODULE(Block);

struct TinyNet : torch::nn::Module {
  TinyNet() {
    weight = register_parameter("weight", at::randn({4, 3}));
    block = register_module("block", Block());
    steps = register_buffer("steps", at::zeros({2}, at::kLong));
    running = register_buffer("running", at::zeros({3}));
  }
  at::Tensor weight, steps, running;
  Block block{nullptr};
};

// Checkpoint tensors matching TinyNet's names, in float32.
std::map<std::string, at::Tensor> reference_weights() {
  return {
      {"weight", at::arange(12, at::kFloat).view({4, 3}) * 0.25 - 1},
      {"block.proj.weight", at::arange(6, at::kFloat).view({2, 3}) * 0.5},
      {"block.proj.bias", at::tensor({0.125f, -0.375f})},
      {"block.scale", at::tensor({1.5f, -2.0f})},
      {"steps", at::tensor({int64_t{7}, int64_t{1} << 40})},
      {"running", at::tensor({0.1f, 0.2f, 0.3f})},
  };
}

std::map<std::string, at::Tensor> with_prefix(const std::map<std::string, at::Tensor>& in, const std::string& prefix) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : in) out[prefix + k] = v;
  return out;
}

std::map<std::string, at::Tensor> floats_to(const std::map<std::string, at::Tensor>& in, at::ScalarType dtype) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : in) out[k] = v.is_floating_point() ? v.to(dtype) : v;
  return out;
}

std::map<std::string, at::Tensor> module_state(torch::nn::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected CheckpointError";
  return {};
}

// ---- tests ---------------------------------------------------------------------------------

TEST(LoadStateDict, Float32LoadsExactValues) {
  const auto weights = reference_weights();
  const auto path = write_checkpoint(weights, "model.safetensors");
  TinyNet net;
  const at::Tensor weight_before = net.weight;
  const LoadReport report = load_state_dict(net, Checkpoint(path));
  EXPECT_EQ(report.loaded.size(), weights.size());
  EXPECT_TRUE(report.unused.empty());
  EXPECT_TRUE(report.missing_optional.empty());
  for (const auto& [name, tensor] : module_state(net)) {
    SCOPED_TRACE(name);
    EXPECT_EQ(tensor.scalar_type(), weights.at(name).scalar_type());
    EXPECT_TRUE(at::equal(tensor, weights.at(name)));
  }
  // The registered tensors were updated in place (same TensorImpl), still trainable parameters.
  EXPECT_TRUE(net.weight.is_same(weight_before));
  EXPECT_TRUE(net.weight.requires_grad());
  EXPECT_TRUE(net.block->proj->weight.requires_grad());
  EXPECT_TRUE(at::equal(net.block->proj->forward(at::ones({1, 3})),
                        at::ones({1, 3}).matmul(weights.at("block.proj.weight").t()) + weights.at("block.proj.bias")));
  // Loaded tensors own their memory (the file may go away).
  EXPECT_TRUE(at::equal(net.weight, weights.at("weight")));
}

TEST(LoadStateDict, Bf16CheckpointUpcastsExactly) {
  const auto weights = floats_to(reference_weights(), at::kBFloat16);
  const auto path = write_checkpoint(weights, "model.safetensors");
  TinyNet net;
  load_state_dict(net, Checkpoint(path));  // default dtype float32
  for (const auto& [name, tensor] : module_state(net)) {
    SCOPED_TRACE(name);
    if (name == "steps") {
      EXPECT_EQ(tensor.scalar_type(), at::kLong);
      EXPECT_TRUE(at::equal(tensor, weights.at(name)));
    } else {
      EXPECT_EQ(tensor.scalar_type(), at::kFloat);
      EXPECT_TRUE(at::equal(tensor, weights.at(name).to(at::kFloat)));
    }
  }
}

TEST(LoadStateDict, ConvertsToRequestedDtypeKeepingIntegerBuffers) {
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto weights = reference_weights();
    const auto path = write_checkpoint(weights, "model.safetensors");
    TinyNet net;
    LoadOptions options;
    options.dtype = dtype;
    load_state_dict(net, Checkpoint(path), options);
    for (const auto& [name, tensor] : module_state(net)) {
      SCOPED_TRACE(name);
      if (name == "steps") {
        EXPECT_EQ(tensor.scalar_type(), at::kLong);
        EXPECT_TRUE(at::equal(tensor, weights.at(name)));  // 2^40 survives: never went through float
      } else {
        EXPECT_EQ(tensor.scalar_type(), dtype);
        EXPECT_TRUE(at::equal(tensor, weights.at(name).to(dtype)));
      }
    }
    // The module computes in the new dtype.
    EXPECT_EQ(net.block->proj->forward(at::ones({1, 3}, dtype)).scalar_type(), dtype);
  }
}

TEST(LoadStateDict, MissingKeysAreAllListed) {
  auto weights = reference_weights();
  weights.erase("weight");
  weights.erase("block.proj.bias");
  weights.erase("steps");
  const auto path = write_checkpoint(weights, "missing.safetensors");
  TinyNet net;
  const auto before = net.block->proj->weight.clone();
  const auto msg = error_of([&] { load_state_dict(net, Checkpoint(path)); });
  for (const char* key : {"weight", "block.proj.bias", "steps", "missing.safetensors", "3 missing"}) {
    EXPECT_NE(msg.find(key), std::string::npos) << key << " not in: " << msg;
  }
  // Nothing was loaded when the checkpoint does not fit.
  EXPECT_TRUE(at::equal(net.block->proj->weight, before));
}

TEST(LoadStateDict, ShapeMismatchIsReportedWithBothShapes) {
  auto weights = reference_weights();
  weights["block.proj.weight"] = at::zeros({3, 2});
  weights["running"] = at::zeros({4});
  weights.erase("block.scale");
  const auto path = write_checkpoint(weights, "shapes.safetensors");
  TinyNet net;
  const auto msg = error_of([&] { load_state_dict(net, Checkpoint(path)); });
  for (const char* part : {"block.proj.weight: checkpoint [3,2] vs module [2,3]", "running: checkpoint [4] vs module [3]",
                           "block.scale", "shapes.safetensors"}) {
    EXPECT_NE(msg.find(part), std::string::npos) << part << " not in: " << msg;
  }
}

TEST(LoadStateDict, IntegerCheckpointForFloatParameterIsAnError) {
  auto weights = reference_weights();
  weights["block.scale"] = at::tensor({int64_t{1}, int64_t{2}});
  const auto path = write_checkpoint(weights, "dtype.safetensors");
  TinyNet net;
  const auto msg = error_of([&] { load_state_dict(net, Checkpoint(path)); });
  EXPECT_NE(msg.find("block.scale"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I64"), std::string::npos) << msg;
}

TEST(LoadStateDict, UnusedKeysAreReportedSortedUnderPrefix) {
  auto weights = with_prefix(reference_weights(), "model.");
  weights["model.zzz_extra"] = at::zeros({1});
  weights["model.aaa_extra"] = at::zeros({1});
  weights["other.ignored"] = at::zeros({1});  // outside the prefix: not reported
  const auto path = write_checkpoint(weights, "model.safetensors");
  TinyNet net;
  LoadOptions options;
  options.prefix = "model.";
  const auto report = load_state_dict(net, Checkpoint(path), options);
  EXPECT_EQ(report.unused, (std::vector<std::string>{"model.aaa_extra", "model.zzz_extra"}));
  EXPECT_EQ(report.loaded.size(), reference_weights().size());
  EXPECT_TRUE(at::equal(net.weight, reference_weights().at("weight")));

  // Without the prefix nothing is found, and every name is listed with the (empty) prefix.
  TinyNet net2;
  const auto msg = error_of([&] { load_state_dict(net2, Checkpoint(path)); });
  EXPECT_NE(msg.find("6 missing"), std::string::npos) << msg;
}

TEST(LoadStateDict, OptionalKeysMayBeAbsent) {
  auto weights = reference_weights();
  weights.erase("block.scale");
  weights.erase("running");
  const auto path = write_checkpoint(weights, "model.safetensors");
  TinyNet net;
  const auto scale_before = net.block->scale.clone();
  LoadOptions options;
  options.optional = {"block.scale", "running"};
  options.dtype = at::kBFloat16;
  const auto report = load_state_dict(net, Checkpoint(path), options);
  EXPECT_EQ(report.missing_optional, (std::vector<std::string>{"block.scale", "running"}));
  EXPECT_EQ(report.loaded.size(), weights.size());
  // Left as initialised, but in the requested dtype.
  EXPECT_EQ(net.block->scale.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(net.block->scale, scale_before.to(at::kBFloat16)));
  EXPECT_EQ(net.running.scalar_type(), at::kBFloat16);

  // Optional keys that are present are loaded normally.
  const auto full = write_checkpoint(reference_weights(), "model.safetensors");
  TinyNet net2;
  const auto report2 = load_state_dict(net2, Checkpoint(full), options);
  EXPECT_TRUE(report2.missing_optional.empty());
  EXPECT_TRUE(at::equal(net2.block->scale, reference_weights().at("block.scale").to(at::kBFloat16)));
}

TEST(LoadStateDict, CheckpointDirectory) {
  const auto path = write_checkpoint(reference_weights(), "model.safetensors");
  const auto dir = path.substr(0, path.rfind('/'));
  TinyNet net;
  const auto report = load_state_dict(net, Checkpoint(dir));
  EXPECT_EQ(report.loaded.size(), reference_weights().size());
}

TEST(LoadStateDict, LoadsOntoCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "CUDA not available";
  const auto weights = floats_to(reference_weights(), at::kBFloat16);
  const auto path = write_checkpoint(weights, "model.safetensors");
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    TinyNet net;
    LoadOptions options;
    options.dtype = dtype;
    options.device = c10::Device(c10::kCUDA, 0);
    options.optional = {"running"};
    load_state_dict(net, Checkpoint(path), options);
    for (const auto& [name, tensor] : module_state(net)) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(tensor.is_cuda());
      const auto expected = name == "steps" ? weights.at(name) : weights.at(name).to(dtype);
      EXPECT_EQ(tensor.scalar_type(), expected.scalar_type());
      EXPECT_TRUE(at::equal(tensor.cpu(), expected));
    }
  }
}

}  // namespace

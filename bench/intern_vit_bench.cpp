// InternViT forward at real model shapes with random weights (no checkpoint needed).
// Prints one JSON line per configuration: the peer script (bench/intern_vit_peer.py) prints the
// same fields, and bench/run_vit_bench.sh pairs them.
//
//   intern_vit_bench --shape 300m|6b --batch N --dtype fp32|bf16 [--iters K] [--warmup W] [--threads T]
//                    [--device cpu|cuda] [--kernels 0|1]
// On CUDA the weights are random on the device, the timing ends with a device synchronisation,
// and --kernels 1 turns the library's CUDA kernels on (off by default).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "io/config.h"
#include "kernels/cuda_ops.h"
#include "models/intern_vit.h"
#include "nn/layers.h"

namespace {

internvl::io::VisionConfig shape_config(const std::string& shape) {
  internvl::io::VisionConfig c;
  if (shape == "300m") {  // InternViT-300M-448px
    c.hidden_size = 1024;
    c.num_attention_heads = 16;
    c.intermediate_size = 4096;
    c.num_hidden_layers = 24;
    c.image_size = 448;
    c.norm_type = "layer_norm";
    c.qkv_bias = true;
    c.qk_normalization = false;
  } else if (shape == "6b") {  // InternViT-6B-224px
    c.hidden_size = 3200;
    c.num_attention_heads = 25;
    c.intermediate_size = 12800;
    c.num_hidden_layers = 48;
    c.image_size = 224;
    c.norm_type = "rms_norm";
    c.qkv_bias = false;
    c.qk_normalization = true;
  } else {
    throw std::invalid_argument("--shape must be 300m or 6b");
  }
  return c;
}

double flops_per_image(const internvl::io::VisionConfig& c) {
  const double n = c.num_positions(), d = c.hidden_size, i = c.intermediate_size;
  const double per_layer = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * n * d + 2 * 2 * n * d * i;
  return per_layer * c.num_hidden_layers + 2 * (n - 1) * d * 3 * c.patch_size * c.patch_size;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "300m", dtype_name = "fp32", device_name = "cpu";
  int batch = 1, iters = 3, warmup = 1, threads = 0, kernels_on = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--shape") shape = value;
    else if (key == "--batch") batch = std::stoi(value);
    else if (key == "--dtype") dtype_name = value;
    else if (key == "--iters") iters = std::stoi(value);
    else if (key == "--warmup") warmup = std::stoi(value);
    else if (key == "--threads") threads = std::stoi(value);
    else if (key == "--device") device_name = value;
    else if (key == "--kernels") kernels_on = std::stoi(value);
  }
  const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  internvl::kernels::set_cuda_kernels_enabled(kernels_on != 0);
  if (threads > 0) at::set_num_threads(threads);
  const auto dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  const auto config = shape_config(shape);
  internvl::models::InternVisionModel model(config, internvl::nn::ParamInit{dtype, device});
  internvl::nn::init_random(*model, 0);
  at::NoGradGuard no_grad;
  const auto pixels = at::randn({batch, 3, config.image_size, config.image_size}).to(device, dtype);
  std::vector<double> seconds;
  for (int i = 0; i < warmup + iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = model->forward(pixels);
    (void)out.last_hidden_state.sum().item<float>();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) seconds.push_back(s);
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf(
      "{\"impl\": \"internvl-cpp\", \"shape\": \"%s\", \"batch\": %d, \"dtype\": \"%s\", \"threads\": %d, "
      "\"device\": \"%s\", \"kernels\": %d, \"median_s\": %.4f, \"min_s\": %.4f, \"images_per_s\": %.3f, "
      "\"gflops\": %.1f, \"flops_per_image\": %.4g}\n",
      shape.c_str(), batch, dtype_name.c_str(), at::get_num_threads(), device_name.c_str(),
      internvl::kernels::cuda_kernels_enabled() ? 1 : 0, median, seconds.front(), batch / median,
      flops_per_image(config) * batch / median / 1e9, flops_per_image(config));
  return 0;
}

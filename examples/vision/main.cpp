// internvl-vision: preprocess images as a checkpoint's official pipeline does and run its
// InternViT; prints each image's tiles and feature statistics.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "internvl/internvl.h"
#include "internvl/torch.h"

namespace {

void usage() {
  std::cerr << "usage: internvl-vision --model DIR [--device cpu|cuda] [--dtype fp32|bf16|fp16]\n"
               "                       [--layer N] IMAGE...\n"
               "Runs the checkpoint's image preprocessing and vision tower on each IMAGE.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  internvl::LoadOptions options;
  int layer = -1;
  std::vector<std::string> images;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw internvl::InvalidArgument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--model") model_dir = value();
      else if (arg == "--device") options.device = internvl::parse_device(value());
      else if (arg == "--dtype") options.dtype = internvl::parse_dtype(value());
      else if (arg == "--layer") layer = std::stoi(value());
      else if (arg == "-h" || arg == "--help") { usage(); return 0; }
      else if (!arg.empty() && arg[0] == '-') throw internvl::InvalidArgument("unknown option " + arg);
      else images.push_back(arg);
    }
    if (model_dir.empty() || images.empty()) {
      usage();
      return 2;
    }
    const auto start = std::chrono::steady_clock::now();
    const auto model = internvl::Model::load(model_dir, options);
    const auto& info = model.info();
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("model %s: %s + %s, InternViT %d layers x %d (%s), %d px tiles, %zu parameters loaded in %.2f s\n",
                info.path.c_str(), info.architecture.c_str(), info.language_model.c_str(), info.vision_layers,
                info.vision_hidden_size, info.vision_norm.c_str(), info.image_size, info.num_parameters, load_s);
    if (!info.unused_weights.empty()) {
      std::printf("  (%zu checkpoint tensors belong to components this tool does not run)\n",
                  info.unused_weights.size());
    }
    int failures = 0;
    for (const auto& path : images) {
      try {
        const auto t0 = std::chrono::steady_clock::now();
        const auto pixels = internvl::torch_adapter::preprocess(model, internvl::Image::from_file(path));
        const auto hidden = internvl::torch_adapter::vision_hidden_state(model, pixels, layer).to(at::kFloat);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const auto cls = hidden.select(1, 0);
        std::printf("%s: %lld tile(s) -> features [%lld, %lld, %lld], CLS norm %.4f, mean %.5f, std %.5f (%.1f ms)\n",
                    path.c_str(), static_cast<long long>(pixels.size(0)), static_cast<long long>(hidden.size(0)),
                    static_cast<long long>(hidden.size(1)), static_cast<long long>(hidden.size(2)),
                    cls.norm(2, -1).mean().item<double>(), hidden.mean().item<double>(), hidden.std().item<double>(),
                    ms);
      } catch (const internvl::ImageError& e) {
        std::fprintf(stderr, "skipping %s: %s\n", path.c_str(), e.what());
        ++failures;
      }
    }
    return failures == 0 ? 0 : 1;
  } catch (const internvl::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

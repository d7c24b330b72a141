// `internvl-retrieve index`-style throughput: JPEG files -> Model::embed_image in batches -> an
// Index, on an InternVL-C checkpoint whose vision tower has InternViT-300M's shape at 224 px
// (random weights, written once to a temporary folder; the tiny fixture supplies the rest of the
// config). Three ways over the same files, in the same run, alternating:
//   peer     batch 1, preprocess_threads 0: one embed_image call per image (the tool before)
//   batched  batch B, preprocess_threads 0: one call per batch, decoding then forward
//   overlap  batch B, preprocess_threads P: one streamed call (on_batch), decoding of the next
//            batch alongside the forward of the current one (the tool now)
// Prints one JSON line per way and the ratios against the peer.
//
//   embed_images_bench [--images 8] [--batch 4] [--preprocess-threads 1] [--threads T] [--repeats 3]
//                      [--layers 24]
// Each way runs R times, the order rotated per repeat; the median is reported (and the minimum).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "internvl/internvl.h"
#include "internvl/torch.h"
#include "io/config.h"
#include "io/safetensors_writer.h"
#include "models/internvl_clip.h"
#include "nn/layers.h"

namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fixtures_dir() {
  const char* env = std::getenv("INTERNVL_FIXTURES_DIR");
  return env && *env ? env : INTERNVL_BENCH_FIXTURES_DIR;
}

// The fixture's InternVLModel config with InternViT-300M's vision sizes (InternViT-300M-448px:
// LayerNorm, qkv bias, no qk norm), at the retrieval models' 224 px.
nlohmann::json checkpoint_config(int layers) {
  auto json = internvl::io::read_config_json(fixtures_dir() + "/internvl-14b-tiny/config.json");
  auto& v = json["vision_config"];
  v["hidden_size"] = 1024;
  v["num_attention_heads"] = 16;
  v["intermediate_size"] = 4096;
  v["num_hidden_layers"] = layers;
  v["image_size"] = 224;
  v["norm_type"] = "layer_norm";
  v["qkv_bias"] = true;
  v["qk_normalization"] = false;
  return json;
}

// Parameters from the library's own module, so the names and shapes are what its loader expects.
void write_checkpoint(const std::string& dir, const nlohmann::json& json) {
  std::FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
  const std::string text = json.dump(2);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  const auto config = internvl::io::parse_internvl_config(json, dir + "/config.json");
  internvl::models::InternVLClip model(config, internvl::nn::ParamInit{at::kFloat, at::kCPU});
  internvl::nn::init_random(*model, 0);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model->named_parameters(true)) tensors.emplace_back(p.key(), p.value().detach());
  internvl::io::write_safetensors(dir + "/model.safetensors", tensors);
}

struct Way {
  std::string name;
  int batch = 1;
  int preprocess_threads = 0;
  bool streamed = false;
  std::vector<double> seconds;
};

// One pass over `files` the way the tool does it; returns the rows indexed.
int64_t run(const internvl::Model& model, const std::vector<std::string>& files, const Way& way) {
  auto index = model.create_index(internvl::EmbedMode::kC);
  internvl::EmbedOptions options;
  options.batch_size = way.batch;
  options.preprocess_threads = way.preprocess_threads;
  auto open = [](auto begin, auto end) {
    std::vector<internvl::Image> images;
    for (auto it = begin; it != end; ++it) images.push_back(internvl::Image::from_file(*it));
    return images;
  };
  if (way.streamed) {
    options.on_batch = [&](int64_t first, const internvl::Matrix& rows) {
      const auto begin = files.begin() + first;
      index.add(std::vector<std::string>(begin, begin + rows.rows()), rows);
      return true;
    };
    model.embed_image(open(files.begin(), files.end()), options);
  } else {
    for (size_t start = 0; start < files.size(); start += static_cast<size_t>(way.batch)) {
      const auto begin = files.begin() + static_cast<std::ptrdiff_t>(start);
      const auto end = files.begin() + static_cast<std::ptrdiff_t>(std::min(files.size(), start + way.batch));
      index.add(std::vector<std::string>(begin, end), model.embed_image(open(begin, end), options));
    }
  }
  return index.size();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int images = 8, batch = 4, preprocess_threads = 1, threads = 0, repeats = 3, layers = 24;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--images") images = std::stoi(value);
    else if (key == "--batch") batch = std::stoi(value);
    else if (key == "--preprocess-threads") preprocess_threads = std::stoi(value);
    else if (key == "--threads") threads = std::stoi(value);
    else if (key == "--repeats") repeats = std::stoi(value);
    else if (key == "--layers") layers = std::stoi(value);
  }
  if (threads > 0) at::set_num_threads(threads);

  std::string tmpl = (fs::temp_directory_path() / "embed_images_bench_XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  double t0 = now_s();
  write_checkpoint(dir, checkpoint_config(layers));
  std::fprintf(stderr, "random checkpoint written in %.1f s\n", now_s() - t0);

  // The fixture photos (600x500 to 1920x1200 JPEGs), copied round-robin into a folder.
  const std::vector<std::string> photos = {"image1.jpg", "image2.jpg", "image3.jpg", "image4.jpg", "image5.jpg"};
  std::vector<std::string> files;
  fs::create_directories(dir + "/photos");
  for (int i = 0; i < images; ++i) {
    const std::string to = dir + "/photos/" + std::to_string(i) + "_" + photos[i % photos.size()];
    fs::copy_file(fixtures_dir() + "/images/" + photos[i % photos.size()], to);
    files.push_back(to);
  }

  internvl::LoadOptions load;
  load.num_threads = threads;
  const auto model = internvl::Model::load(dir, load);

  // Decoding + preprocessing alone, for the share of the work that overlap can hide.
  t0 = now_s();
  for (const auto& f : files) (void)internvl::torch_adapter::preprocess(model, internvl::Image::from_file(f));
  const double preprocess_s = now_s() - t0;

  std::vector<Way> ways = {{"peer", 1, 0, false, {}},
                           {"batched", batch, 0, false, {}},
                           {"overlap", batch, preprocess_threads, true, {}}};
  // Warm-up per batch shape (oneDNN/MKL set up their kernels per GEMM shape on first use);
  // overlap runs the same shapes as batched.
  for (size_t k = 0; k < 2; ++k) {
    const auto warm = std::vector<std::string>(files.begin(), files.begin() + std::min<size_t>(files.size(), ways[k].batch));
    run(model, warm, ways[k]);
  }
  for (int r = 0; r < repeats; ++r) {
    for (size_t k = 0; k < ways.size(); ++k) {
      auto& way = ways[(k + static_cast<size_t>(r)) % ways.size()];  // rotate the order per repeat
      t0 = now_s();
      const auto rows = run(model, files, way);
      way.seconds.push_back(now_s() - t0);
      if (rows != images) std::fprintf(stderr, "%s: %lld rows for %d images\n", way.name.c_str(), (long long)rows, images);
    }
  }
  const double peer = median(ways[0].seconds);
  for (const auto& way : ways) {
    const double s = median(way.seconds);
    std::printf(
        "{\"way\": \"%s\", \"images\": %d, \"batch\": %d, \"preprocess_threads\": %d, \"threads\": %d, "
        "\"layers\": %d, \"median_s\": %.3f, \"min_s\": %.3f, \"images_per_s\": %.3f, \"speedup_vs_peer\": %.3f}\n",
        way.name.c_str(), images, way.batch, way.preprocess_threads, at::get_num_threads(), layers, s,
        *std::min_element(way.seconds.begin(), way.seconds.end()), images / s, peer / s);
  }
  std::printf("{\"preprocess_only_s\": %.3f, \"preprocess_share_of_peer\": %.3f}\n", preprocess_s, preprocess_s / peer);
  fs::remove_all(dir);
  return 0;
}

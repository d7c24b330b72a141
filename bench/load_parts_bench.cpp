// Peak host memory of a text-only search: Model::load with LoadOptions::parts = kText (what
// `internvl-retrieve search --query TEXT` does now) vs kAll (what it did before), on an
// InternVL-C/G checkpoint whose vision tower has InternViT-6B's shape (InternVL-14B-224px:
// 48 layers x 3200, RMSNorm, qk norm) and whose QLLaMA has LLaMA-7B's width with fewer layers
// (--qllama-layers, default 8: the full 32 would need 28 GB in bf16 for the "all" run).
//
//   load_parts_bench --make DIR [--qllama-layers 8]   writes the checkpoint (bf16, sparse: zeros)
//   load_parts_bench --run DIR --parts text|all [--dtype bf16]
//
// --run prints one JSON line: parts, load seconds, query seconds, peak RSS (VmHWM) in MiB. Each
// run is its own process so that the peaks do not mix; bench/run_load_parts_bench.sh runs both.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "internvl/internvl.h"
#include "io/config.h"
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

// InternVL-14B-224px's sizes on the tiny fixture's config (which keeps its tokenizer's vocabulary).
nlohmann::json checkpoint_config(int qllama_layers) {
  auto json = internvl::io::read_config_json(fixtures_dir() + "/internvl-14b-tiny/config.json");
  auto& v = json["vision_config"];
  v["hidden_size"] = 3200;
  v["num_attention_heads"] = 25;
  v["intermediate_size"] = 12800;
  v["num_hidden_layers"] = 48;
  v["image_size"] = 224;
  v["norm_type"] = "rms_norm";
  v["qkv_bias"] = false;
  v["qk_normalization"] = true;
  auto& q = json["qllama_config"];
  q["hidden_size"] = 4096;
  q["intermediate_size"] = 11008;
  q["num_attention_heads"] = 32;
  q["num_key_value_heads"] = 32;
  q["num_hidden_layers"] = qllama_layers;
  q["num_query_token"] = 96;
  json["num_query_token"] = 96;
  json["hidden_size"] = 4096;
  json["clip_embed_dim"] = 768;
  json["attn_pool_num_heads"] = 16;
  return json;
}

// Names and shapes from the library's own module (built on the meta device: no memory), data left
// as a hole of the file: what is measured is memory, not arithmetic.
int make(const std::string& dir, int qllama_layers) {
  fs::create_directories(dir);
  const auto json = checkpoint_config(qllama_layers);
  std::ofstream(dir + "/config.json") << json.dump(2);
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"}) {
    const auto from = fs::path(fixtures_dir()) / "internvl-14b-tiny" / name;
    if (fs::exists(from)) fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  }
  const auto config = internvl::io::parse_internvl_config(json, dir + "/config.json");
  internvl::models::InternVLClip model(config, internvl::nn::ParamInit{at::kBFloat16, c10::Device(c10::kMeta)});
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0, parameters = 0;
  for (const auto& p : model->named_parameters(true)) {
    const auto bytes = static_cast<uint64_t>(p.value().numel()) * 2;
    header[p.key()] = {{"dtype", "BF16"}, {"shape", p.value().sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    parameters += static_cast<uint64_t>(p.value().numel());
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string path = dir + "/model.safetensors";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  uint64_t length = text.size();
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(length >> (8 * i));
  const bool ok = ::write(fd, prefix, 8) == 8 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::ftruncate(fd, static_cast<off_t>(8 + text.size() + offset)) == 0;
  ::close(fd);
  if (!ok) {
    std::perror(path.c_str());
    return 1;
  }
  std::printf("{\"checkpoint\": \"%s\", \"parameters\": %llu, \"bytes\": %llu}\n", path.c_str(),
              static_cast<unsigned long long>(parameters), static_cast<unsigned long long>(offset));
  return 0;
}

// VmHWM of this process, in KiB.
long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

int run(const std::string& dir, const std::string& parts, const std::string& dtype) {
  internvl::LoadOptions options;
  options.dtype = internvl::parse_dtype(dtype);
  options.parts = parts == "all" ? internvl::ModelParts::kAll : internvl::ModelParts::kText;
  const double t0 = now_s();
  const auto model = internvl::Model::load(dir, options);
  const double load_s = now_s() - t0;
  const double t1 = now_s();
  const auto rows = model.embed_text({"a photo of a cat"});
  const double query_s = now_s() - t1;
  std::printf(
      "{\"parts\": \"%s\", \"dtype\": \"%s\", \"load_s\": %.2f, \"query_s\": %.3f, \"embed_dim\": %lld, "
      "\"parameters\": %zu, \"peak_rss_mib\": %.0f}\n",
      parts.c_str(), dtype.c_str(), load_s, query_s, static_cast<long long>(rows.cols()), model.info().num_parameters,
      peak_rss_kib() / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string make_dir, run_dir, parts = "text", dtype = "bf16";
  int qllama_layers = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--make") make_dir = value;
    else if (key == "--run") run_dir = value;
    else if (key == "--parts") parts = value;
    else if (key == "--dtype") dtype = value;
    else if (key == "--qllama-layers") qllama_layers = std::stoi(value);
  }
  try {
    if (!make_dir.empty()) return make(make_dir, qllama_layers);
    if (!run_dir.empty() && (parts == "text" || parts == "all")) return run(run_dir, parts, dtype);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load_parts_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: load_parts_bench --make DIR [--qllama-layers N] | --run DIR --parts text|all [--dtype bf16]\n");
  return 2;
}

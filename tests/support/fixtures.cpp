#include "support/fixtures.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fixtures_dir.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/tensor_convert.h"

namespace fs = std::filesystem;

namespace internvl::testing {

namespace {
// MKL's multi-threaded sgemm takes a load-dependent path: on a busy machine (ctest -j) some runs
// differ from others by ~1e-5 relative, more than the fixtures' float32 tolerance allows. One MKL
// thread is reproducible (ATen's own ops keep their threads). Runs before main, so before MKL
// initialises; an explicit MKL_NUM_THREADS wins.
const bool kMklReproducible = [] { return ::setenv("MKL_NUM_THREADS", "1", /*overwrite=*/0) == 0; }();
}  // namespace

std::string fixtures_dir() {
  const char* env = std::getenv("INTERNVL_FIXTURES_DIR");
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string(INTERNVL_DEFAULT_FIXTURES_DIR);
}

std::string images_dir() { return (fs::path(fixtures_dir()) / "images").string(); }

std::string fixture_path(const std::string& fixture) { return (fs::path(fixtures_dir()) / fixture).string(); }

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  if (!fs::is_directory(fixtures_dir())) return names;
  for (const auto& entry : fs::directory_iterator(fixtures_dir())) {
    if (entry.is_directory() && fs::exists(entry.path() / "config.json") &&
        fs::exists(entry.path() / "reference.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> fixtures_with_architecture(const std::string& architecture) {
  std::vector<std::string> out;
  for (const auto& name : fixture_names()) {
    const auto config = fixture_config(name);
    if (!config.contains("architectures")) continue;
    for (const auto& arch : config["architectures"]) {
      if (arch == architecture) out.push_back(name);
    }
  }
  return out;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

nlohmann::json fixture_config(const std::string& fixture) {
  return read_json((fs::path(fixture_path(fixture)) / "config.json").string());
}

nlohmann::json fixture_reference(const std::string& fixture) {
  return read_json((fs::path(fixture_path(fixture)) / "reference.json").string());
}

namespace {
const io::SafetensorsFile& reference_file(const std::string& fixture) {
  // Kept open for the test process: reference files are read many times.
  static std::map<std::string, std::unique_ptr<io::SafetensorsFile>> cache;
  auto& slot = cache[fixture];
  if (!slot) {
    slot = std::make_unique<io::SafetensorsFile>(
        (fs::path(fixture_path(fixture)) / "reference.safetensors").string());
  }
  return *slot;
}
}  // namespace

bool has_reference_tensor(const std::string& fixture, const std::string& name) {
  return reference_file(fixture).contains(name);
}

at::Tensor reference_tensor(const std::string& fixture, const std::string& name) {
  const auto& view = reference_file(fixture).tensor(name);
  return io::to_tensor(view, io::to_scalar_type(view.dtype));
}

Closeness compare(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol_rel_to_max) {
  const auto a = actual.detach().to(at::kCPU, at::kDouble);
  const auto e = expected.detach().to(at::kCPU, at::kDouble);
  Closeness c;
  const auto diff = (a - e).abs();
  c.max_abs = diff.numel() ? diff.max().item<double>() : 0.0;
  const double ref_norm = e.norm().item<double>();
  c.rel_l2 = ref_norm > 0 ? (a - e).norm().item<double>() / ref_norm : (a - e).norm().item<double>();
  const double atol = atol_rel_to_max * (e.numel() ? e.abs().max().item<double>() : 0.0);
  c.worst_excess = diff.numel() ? (diff - (atol + rtol * e.abs())).max().item<double>() : 0.0;
  return c;
}

::testing::AssertionResult AllCloseToReference(const at::Tensor& actual, const at::Tensor& expected,
                                              double rtol, double atol_rel_to_max, double rel_l2_max) {
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream msg;
    msg << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << msg.str();
  }
  const auto c = compare(actual, expected, rtol, atol_rel_to_max);
  std::ostringstream msg;
  msg << "max_abs=" << c.max_abs << " rel_l2=" << c.rel_l2 << " worst_excess=" << c.worst_excess;
  // INTERNVL_PRINT_ERRORS=1 prints every comparison (for issue notes and tolerance reviews).
  if (const char* print = std::getenv("INTERNVL_PRINT_ERRORS"); print != nullptr && *print == '1') {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[errors] %s.%s %s\n", info ? info->test_suite_name() : "?", info ? info->name() : "?",
                msg.str().c_str());
  }
  if (!std::isfinite(c.rel_l2) || c.worst_excess > 0 || c.rel_l2 > rel_l2_max) {
    return ::testing::AssertionFailure() << msg.str();
  }
  return ::testing::AssertionSuccess() << msg.str();
}

std::string FixtureName::operator()(const ::testing::TestParamInfo<std::string>& info) const {
  std::string name = info.param;
  for (auto& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

::testing::AssertionResult TensorsEqual(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream msg;
    msg << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << msg.str();
  }
  const auto a = actual.to(at::kCPU, at::kLong).flatten();
  const auto e = expected.to(at::kCPU, at::kLong).flatten();
  const auto mismatch = (a != e);
  const int64_t count = mismatch.sum().item<int64_t>();
  if (count == 0) return ::testing::AssertionSuccess();
  const int64_t first = mismatch.nonzero()[0][0].item<int64_t>();
  return ::testing::AssertionFailure() << count << " of " << a.numel() << " elements differ; first at flat index "
                                       << first << ": " << a[first].item<int64_t>() << " vs expected "
                                       << e[first].item<int64_t>() << "; max |diff| "
                                       << (a - e).abs().max().item<int64_t>();
}

void copy_checkpoint(const std::string& fixture, const std::string& destination, const std::string& dropped_tensor,
                     const std::vector<std::pair<std::string, at::Tensor>>& extra_tensors) {
  const fs::path source = fixture_path(fixture);
  fs::create_directories(destination);
  for (const auto& entry : fs::directory_iterator(source)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.rfind("reference", 0) == 0 || name.rfind("model", 0) == 0) continue;
    fs::copy_file(entry.path(), fs::path(destination) / name, fs::copy_options::overwrite_existing);
  }
  // Rewritten as one model.safetensors whatever the source's sharding.
  const io::Checkpoint checkpoint(source.string());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& name : checkpoint.names()) {
    if (name == dropped_tensor) continue;
    const auto& view = checkpoint.tensor(name);
    tensors.emplace_back(name, io::to_tensor(view, io::to_scalar_type(view.dtype)));
  }
  tensors.insert(tensors.end(), extra_tensors.begin(), extra_tensors.end());
  io::write_safetensors((fs::path(destination) / "model.safetensors").string(), tensors);
}

at::Tensor reference_pixel_values(const std::string& fixture, const std::string& image) {
  const std::string prefix = "images." + image + ".";
  if (has_reference_tensor(fixture, prefix + "pixel_values")) return reference_tensor(fixture, prefix + "pixel_values");
  const auto u8 = reference_tensor(fixture, prefix + "pixel_values_u8").contiguous();  // [tiles, 3, H, W]
  // ToTensor + Normalize(IMAGENET_MEAN, IMAGENET_STD) in float32, as the official transform.
  constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
  constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
  auto out = at::empty(u8.sizes(), at::kFloat);
  const int64_t plane = u8.size(2) * u8.size(3);
  const auto* in = u8.data_ptr<uint8_t>();
  auto* dst = out.data_ptr<float>();
  for (int64_t i = 0; i < u8.numel(); ++i) {
    const int c = static_cast<int>((i / plane) % 3);
    dst[i] = (static_cast<float>(in[i]) / 255.0f - kMean[c]) / kStd[c];
  }
  return out;
}

std::vector<std::string> conversation_images(const nlohmann::json& conversation) {
  std::vector<std::string> files;
  if (conversation.contains("images") && conversation.at("images").is_array()) {
    for (const auto& f : conversation.at("images")) files.push_back(f.get<std::string>());
  } else if (conversation.contains("image") && !conversation.at("image").is_null()) {
    files.push_back(conversation.at("image").get<std::string>());
  }
  return files;
}

}  // namespace internvl::testing

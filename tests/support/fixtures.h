// Test helpers: where the fixtures are, their JSON and reference tensors, and the fixtures
// README's float32 tolerance check.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace internvl::testing {

// $INTERNVL_FIXTURES_DIR, else the copy in tests/data/fixtures.
std::string fixtures_dir();
std::string images_dir();
// Fixture folders (those holding config.json + reference.json), sorted by name.
std::vector<std::string> fixture_names();
// Fixture folders whose config.json lists `architecture` (e.g. "InternVLModel").
std::vector<std::string> fixtures_with_architecture(const std::string& architecture);
std::string fixture_path(const std::string& fixture);

nlohmann::json read_json(const std::string& path);
nlohmann::json fixture_config(const std::string& fixture);
nlohmann::json fixture_reference(const std::string& fixture);

// A tensor of reference.safetensors as a CPU tensor owned by the caller.
at::Tensor reference_tensor(const std::string& fixture, const std::string& name);
bool has_reference_tensor(const std::string& fixture, const std::string& name);

// load_image() pixel_values of `image` (a file of images/) for this fixture: the stored float
// tensor, or (Qwen fixtures store only uint8 tiles) ToTensor + Normalize of `pixel_values_u8`,
// which the fixtures README §1.4 shows is bit-exact.
at::Tensor reference_pixel_values(const std::string& fixture, const std::string& image);
// The image files of a reference conversation, in prompt order (`images`, else `image`).
std::vector<std::string> conversation_images(const nlohmann::json& conversation);

struct Closeness {
  double max_abs = 0;
  double rel_l2 = 0;
  double worst_excess = 0;  // max(|a-e| - (atol + rtol|e|)); <= 0 passes
};
Closeness compare(const at::Tensor& actual, const at::Tensor& expected, double rtol = 1e-4,
                  double atol_rel_to_max = 1e-4);

// gtest assertion: elementwise rtol/atol and rel-L2 bound, printing the measured errors.
::testing::AssertionResult AllCloseToReference(const at::Tensor& actual, const at::Tensor& expected,
                                              double rtol = 1e-4, double atol_rel_to_max = 1e-4,
                                              double rel_l2_max = 1e-5);

// Test-name suffix for suites parameterised by fixture name ("internvl-14b-tiny" -> "internvl_14b_tiny").
struct FixtureName {
  std::string operator()(const ::testing::TestParamInfo<std::string>& info) const;
};

// Copies a fixture's checkpoint folder (config, tokenizer files, weights; not the references) to
// `destination`, rewriting the weights without `dropped_tensor` when it is not empty.
void copy_checkpoint(const std::string& fixture, const std::string& destination,
                     const std::string& dropped_tensor = "",
                     const std::vector<std::pair<std::string, at::Tensor>>& extra_tensors = {});

// Exact equality (for uint8 pixels and int64 ids), reporting the first mismatch.
::testing::AssertionResult TensorsEqual(const at::Tensor& actual, const at::Tensor& expected);

}  // namespace internvl::testing

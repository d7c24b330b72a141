// The installed package, used by a separate project (examples/consumer) built with CMake
// (find_package(InternVL CONFIG)) and with pkg-config: scripts/check_install.sh installs and
// builds; the programs must reproduce the official references and the in-tree library.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "fixtures_dir.h"
#include "internvl/internvl.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;

namespace {

using internvl::testing::describe;
using internvl::testing::run_tool;

std::string build_dir() {
  const std::string probe = internvl::testing::example_tool_path("INTERNVL_BUILD_DIR_OVERRIDE", "");
  return fs::path(probe).parent_path().string();
}

// Each check takes the folders holding the CMake-built and the pkg-config-built programs.
using Variants = std::vector<std::string>;

void check_embeddings(const Variants& variants) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  for (const auto& fixture : fixtures) {
    const auto ref = internvl::testing::fixture_reference(fixture);
    const std::string image =
        (fs::path(internvl::testing::images_dir()) / ref.at("inputs").at("images").at(0).at("file").get<std::string>())
            .string();
    std::vector<std::string> args = {internvl::testing::fixture_path(fixture), image};
    for (const auto& caption : ref.at("inputs").at("captions")) args.push_back(caption.at("text").get<std::string>());
    const at::Tensor expected = internvl::testing::reference_tensor(fixture, "g.logits_per_image")[0];

    for (const auto& dir : variants) {
      const auto run = run_tool(dir + "/embeddings", args);
      ASSERT_EQ(run.status, 0) << dir << "\n" << describe(run);
      std::istringstream lines(run.out);
      std::vector<float> printed;
      std::string line;
      while (std::getline(lines, line)) {
        // "<logit>  <text>"; a text with a newline continues on lines that hold no number.
        char* end = nullptr;
        const float value = std::strtof(line.c_str(), &end);
        if (end != line.c_str() && std::string(end).rfind("  ", 0) == 0) printed.push_back(value);
      }
      ASSERT_EQ(static_cast<int64_t>(printed.size()), expected.size(0)) << run.out;
      const at::Tensor actual = at::tensor(printed);
      // Printed with 6 significant digits.
      EXPECT_TRUE(at::allclose(actual, expected, 1e-5, 1e-4 * expected.abs().max().item<double>()))
          << dir << "\nactual " << actual << "\nexpected " << expected;
    }
  }
}

void check_chat(const Variants& variants) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  for (const auto& fixture : fixtures) {
    const auto ref = internvl::testing::fixture_reference(fixture);
    const std::string image =
        (fs::path(internvl::testing::images_dir()) / ref.at("inputs").at("images").at(0).at("file").get<std::string>())
            .string();
    const std::string question = "Describe the image.";
    // What examples/consumer/chat.cpp asks, through the in-tree library.
    const auto model = internvl::Model::load(internvl::testing::fixture_path(fixture));
    internvl::ChatRequest request;
    request.question = "<image>\n" + question;
    request.images = {internvl::Image::from_file(image)};
    request.generation.max_new_tokens = 64;
    std::string streamed;
    const auto result = model.chat(request, [&](const std::string& piece) {
      streamed += piece;
      return true;
    });
    const std::string expected = streamed + "\n(" + std::to_string(result.output_ids.size()) + " tokens)\n";

    for (const auto& dir : variants) {
      const auto run = run_tool(dir + "/chat", {internvl::testing::fixture_path(fixture), image, question});
      ASSERT_EQ(run.status, 0) << dir << "\n" << describe(run);
      EXPECT_EQ(run.out, expected) << dir;
    }
  }
}

void check_bad_folder(const Variants& variants) {
  for (const auto& dir : variants) {
    const auto run = run_tool(dir + "/embeddings", {"/nonexistent/model", "x.jpg", "text"});
    EXPECT_EQ(run.status, 1) << describe(run);
    EXPECT_NE(run.err.find("/nonexistent/model"), std::string::npos) << describe(run);
  }
}

// One test: installing and building the consumer takes a while, so it is done once.
TEST(Consumer, InstalledPackageBuildsAndRuns) {
  const std::string work = internvl::testing::unique_temp_path("consumer", "install");
  const auto setup = run_tool("/bin/bash", {std::string(INTERNVL_SOURCE_DIR) + "/scripts/check_install.sh",
                                            build_dir(), work});
  ASSERT_EQ(setup.status, 0) << "install + consumer build failed:\n" << describe(setup);
  const Variants variants = {work + "/cmake", work + "/pkg-config"};
  {
    SCOPED_TRACE("embeddings");
    check_embeddings(variants);
  }
  {
    SCOPED_TRACE("chat");
    check_chat(variants);
  }
  {
    SCOPED_TRACE("bad folder");
    check_bad_folder(variants);
  }
  if (!HasFailure()) fs::remove_all(work);
}

}  // namespace

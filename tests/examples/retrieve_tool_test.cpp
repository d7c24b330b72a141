// The internvl-retrieve example tool, run as a user would (a child process), against the official
// references of every InternVLModel fixture: saved embeddings, index + search, zero-shot
// classification, HTML output, exit codes.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/tensor_convert.h"
#include "internvl/index.h"
#include "internvl/version.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"


namespace fs = std::filesystem;
using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;
using nlohmann::json;

namespace {

using internvl::testing::describe;
using internvl::testing::read_file;
using Run = internvl::testing::ToolRun;

// The tool is built next to the tests; $INTERNVL_RETRIEVE_TOOL overrides.
std::string tool_path() {
  return internvl::testing::example_tool_path("INTERNVL_RETRIEVE_TOOL", "examples/retrieve/internvl-retrieve");
}

void write_file(const std::string& path, const std::string& text) {
  ASSERT_TRUE(internvl::testing::write_file(path, text)) << path;
}

Run run_tool(const std::vector<std::string>& args) { return internvl::testing::run_tool(tool_path(), args); }


json parse_json(const Run& run) {
  try {
    return json::parse(run.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << describe(run);
    return json();
  }
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n\f\v") - first + 1);
}

// --texts v1 v2 ... when no value looks like an option, else one --texts=v per value.
void add_multi(std::vector<std::string>& args, const std::string& flag, const std::vector<std::string>& values) {
  const bool plain = std::none_of(values.begin(), values.end(), [](const std::string& v) { return v.rfind("--", 0) == 0; });
  if (plain) {
    args.push_back(flag);
    args.insert(args.end(), values.begin(), values.end());
  } else {
    for (const auto& v : values) args.push_back(flag + "=" + v);
  }
}

// Index of the best entry of a 1-D tensor, or -1 when the best two are closer than 1e-3.
int64_t clear_argmax(const at::Tensor& column) {
  if (column.numel() < 2) return column.numel() == 1 ? 0 : -1;
  const auto sorted = std::get<0>(column.sort(0, /*descending=*/true));
  if ((sorted[0] - sorted[1]).item<float>() <= 1e-3) return -1;
  return column.argmax().item<int64_t>();
}

class RetrieveTool : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tool_ = tool_path();
    if (tool_.empty() || !fs::exists(tool_)) GTEST_SKIP() << "internvl-retrieve not built (looked for " << tool_ << ")";
    fixture_ = GetParam();
    model_dir_ = internvl::testing::fixture_path(fixture_);
    const auto ref = internvl::testing::fixture_reference(fixture_);
    for (const auto& image : ref.at("inputs").at("images")) {
      image_names_.push_back(image.at("file").get<std::string>());
      images_.push_back((fs::path(internvl::testing::images_dir()) / image_names_.back()).string());
    }
    for (const auto& caption : ref.at("inputs").at("captions")) captions_.push_back(caption.at("text").get<std::string>());
    std::string pattern = ::testing::TempDir() + "/retrieve_tool_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    work_ = pattern;
  }
  void TearDown() override {
    if (!work_.empty()) {
      std::error_code ec;
      fs::remove_all(work_, ec);
    }
  }
  std::vector<std::string> base(const std::string& command) const {
    return {command, "--model", model_dir_, "--quiet"};
  }
  // A folder with copies of the fixture images (half in a subfolder, the first with an upper-case
  // extension), an undecodable "*.jpg" and a text file. Returns copied file name -> image row.
  std::map<std::string, int64_t> make_photo_folder(const fs::path& folder) const {
    std::map<std::string, int64_t> rows;
    fs::create_directories(folder / "sub");
    for (size_t i = 0; i < images_.size(); ++i) {
      std::string name = image_names_[i];
      if (i == 0) {
        const auto dot = name.rfind('.');
        std::string ext = name.substr(dot);
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::toupper(c); });
        name = name.substr(0, dot) + "_upper" + ext;
      }
      fs::copy_file(images_[i], (i % 2 == 0 ? folder : folder / "sub") / name, fs::copy_options::overwrite_existing);
      rows[name] = static_cast<int64_t>(i);
    }
    write_file((folder / "not_an_image.jpg").string(), "this is a text file, not a JPEG\n");
    write_file((folder / "notes.txt").string(), "not an image either\n");
    return rows;
  }

  std::string tool_, fixture_, model_dir_;
  std::vector<std::string> images_, image_names_, captions_;
  fs::path work_;
};

TEST_P(RetrieveTool, EmbedSavesOfficialEmbeddingsAndLogits) {
  for (const std::string mode : {"c", "g"}) {
    SCOPED_TRACE("mode " + mode);
    const std::string out = (work_ / ("embeddings_" + mode + ".safetensors")).string();
    auto args = base("embed");
    args.insert(args.end(), {"--mode", mode, "--batch-size", "5", "--save-embeddings", out});
    add_multi(args, "--images", images_);
    add_multi(args, "--texts", captions_);
    const auto run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    internvl::io::SafetensorsFile file(out);
    const auto image_embeds = internvl::io::to_tensor(file.tensor("image_embeds"), at::kFloat);
    const auto text_embeds = internvl::io::to_tensor(file.tensor("text_embeds"), at::kFloat);
    const auto logits = internvl::io::to_tensor(file.tensor("logits_per_image"), at::kFloat);
    EXPECT_TRUE(AllCloseToReference(image_embeds, reference_tensor(fixture_, mode + ".image_embeds")));
    const std::string text_name =
        internvl::testing::has_reference_tensor(fixture_, mode + ".text_embeds") ? mode + ".text_embeds" : "c.text_embeds";
    EXPECT_TRUE(AllCloseToReference(text_embeds, reference_tensor(fixture_, text_name)));
    EXPECT_TRUE(AllCloseToReference(logits, reference_tensor(fixture_, mode + ".logits_per_image")));
    // The text report ranks the images per text, and its table names every image in full.
    EXPECT_TRUE(contains(run.out, "logits_per_image")) << run.out;
    for (const auto& image : images_) EXPECT_TRUE(contains(run.out, "\n" + image + " ")) << image << "\n" << run.out;
  }
}

TEST_P(RetrieveTool, EmbedJsonAndErrorsOnUnreadableImage) {
  auto args = base("embed");
  args.insert(args.end(), {"--json", "--images", images_.front()});
  add_multi(args, "--texts", {captions_.front()});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  ASSERT_TRUE(doc.contains("logits_per_image")) << run.out;
  EXPECT_EQ(doc["logits_per_image"].size(), 1u);
  EXPECT_EQ(doc["image_embeds"][0].size(), static_cast<size_t>(reference_tensor(fixture_, "c.image_embeds").size(1)));

  // An explicitly given image that cannot be read is an error (rows must match the inputs).
  const std::string bad = (work_ / "broken.png").string();
  write_file(bad, "not a png");
  run = run_tool({"embed", "--model", model_dir_, "--images", images_.front(), bad});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
  EXPECT_TRUE(contains(run.err, "broken.png")) << run.err;
}

TEST_P(RetrieveTool, IndexSkipsUnreadableResumesAndSearchRanksAsReference) {
  const fs::path photos = work_ / "photos";
  const auto rows = make_photo_folder(photos);
  const auto n = static_cast<int64_t>(images_.size());
  const float scale = std::exp(reference_tensor(fixture_, "logit_scale").item<float>());

  for (const std::string mode : {"c", "g"}) {
    SCOPED_TRACE("mode " + mode);
    const std::string index = (work_ / ("photos_" + mode + ".safetensors")).string();
    auto args = base("index");
    args.insert(args.end(), {"--mode", mode, "--index", index, "--batch-size", "4", "--save-every", "1", "--json",
                             photos.string()});
    auto run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    auto doc = parse_json(run);
    EXPECT_EQ(doc.value("added", -1), n) << run.out;
    EXPECT_EQ(doc.value("size", -1), n) << run.out;
    ASSERT_EQ(doc["skipped"].size(), 1u) << run.out;
    EXPECT_TRUE(contains(doc["skipped"][0]["path"].get<std::string>(), "not_an_image.jpg")) << run.out;
    EXPECT_TRUE(contains(run.err, "warning")) << run.err;
    EXPECT_TRUE(contains(run.err, "not_an_image.jpg")) << run.err;

    // Again: everything is already indexed.
    args = base("index");
    args.insert(args.end(), {"--index", index, photos.string()});
    run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, " 0 new embedding")) << run.out;
    EXPECT_TRUE(contains(run.out, std::to_string(n) + " already indexed")) << run.out;

    // Text queries: the top hit is the reference's best image for that caption.
    args = base("search");
    args.insert(args.end(), {"--index", index, "--json", "--top-k", std::to_string(n)});
    for (const auto& caption : captions_) args.push_back("--query=" + caption);
    run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    doc = parse_json(run);
    const auto logits = reference_tensor(fixture_, mode + ".logits_per_image");
    ASSERT_EQ(doc["results"].size(), captions_.size()) << run.out;
    for (size_t t = 0; t < captions_.size(); ++t) {
      SCOPED_TRACE("caption " + std::to_string(t));
      const auto& result = doc["results"][t];
      EXPECT_EQ(result["query"].get<std::string>(), captions_[t]);
      ASSERT_EQ(result["hits"].size(), static_cast<size_t>(n));
      for (const auto& hit : result["hits"]) {  // scores are the reference cosines
        const auto name = fs::path(hit["id"].get<std::string>()).filename().string();
        ASSERT_TRUE(rows.count(name)) << name;
        EXPECT_NEAR(hit["score"].get<float>(), logits[rows.at(name)][static_cast<int64_t>(t)].item<float>() / scale, 1e-4);
      }
      const int64_t best = clear_argmax(logits.select(1, static_cast<int64_t>(t)));
      if (best < 0) continue;
      const auto top = fs::path(result["hits"][0]["id"].get<std::string>()).filename().string();
      EXPECT_EQ(rows.at(top), best) << top;
    }

    // An image query finds itself with cosine 1.
    const auto query_image = (photos / "sub" / image_names_.at(1 % images_.size())).string();
    if (images_.size() > 1) {
      args = base("search");
      args.insert(args.end(), {"--index", index, "--json", "--query-image", query_image});
      run = run_tool(args);
      ASSERT_EQ(run.status, 0) << describe(run);
      doc = parse_json(run);
      bool found = false;
      for (const auto& hit : doc["results"][0]["hits"]) {
        if (fs::path(hit["id"].get<std::string>()) == fs::path(query_image)) {
          found = true;
          EXPECT_NEAR(hit["score"].get<float>(), 1.0f, 1e-4);
        }
      }
      EXPECT_TRUE(found) << run.out;
    }
  }

  // An index keeps its mode: asking for the other one is an error, not a silent mix.
  auto args = base("index");
  args.insert(args.end(), {"--mode", "g", "--index", (work_ / "photos_c.safetensors").string(), photos.string()});
  const auto run = run_tool(args);
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
}

// With --batch-size 2 the unreadable file falls in the middle batch: that batch alone is retried
// one image at a time (its good image kept), and the batches after it still come through the
// pipelined embed_image, each row the reference embedding of its file.
TEST_P(RetrieveTool, IndexRetriesAFailingMiddleBatchAndCarriesOn) {
  const fs::path photos = work_ / "photos";
  const auto rows = make_photo_folder(photos);
  const auto n = static_cast<int64_t>(images_.size());
  if (n < 4) GTEST_SKIP() << "needs at least 4 images for a batch after the failing one";
  const std::string index = (work_ / "middle.safetensors").string();
  auto args = base("index");
  args.insert(args.end(), {"--index", index, "--batch-size", "2", "--json", photos.string()});
  const auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  EXPECT_EQ(doc.value("added", -1), n) << run.out;
  ASSERT_EQ(doc["skipped"].size(), 1u) << run.out;
  EXPECT_TRUE(contains(doc["skipped"][0]["path"].get<std::string>(), "not_an_image.jpg")) << run.out;

  const auto loaded = internvl::Index::load(index);
  ASSERT_EQ(loaded.size(), n);
  const auto reference = reference_tensor(fixture_, "c.image_embeds");
  const auto unit = reference / reference.norm(2, -1, true);
  const internvl::Matrix embeddings = loaded.embeddings();
  std::vector<std::string> sorted_ids = loaded.ids();
  std::sort(sorted_ids.begin(), sorted_ids.end());
  EXPECT_TRUE(std::adjacent_find(sorted_ids.begin(), sorted_ids.end()) == sorted_ids.end()) << "an id twice";
  for (int64_t r = 0; r < n; ++r) {
    const auto name = fs::path(loaded.ids()[static_cast<size_t>(r)]).filename().string();
    ASSERT_TRUE(rows.count(name)) << name;
    const auto expected = unit[rows.at(name)];
    for (int64_t c = 0; c < expected.size(0); ++c) {
      ASSERT_NEAR(embeddings(r, c), expected[c].item<float>(), 1e-4) << name << " column " << c;
    }
  }
}

TEST_P(RetrieveTool, ClassifyTopClassIsReferenceArgmax) {
  // Class names: the captions a one-per-line label file can hold unchanged.
  std::vector<int64_t> columns;
  std::string labels;
  for (size_t t = 0; t < captions_.size(); ++t) {
    const auto& c = captions_[t];
    if (c.empty() || c != trim(c) || contains(c, "\n") || contains(c, "\r")) continue;
    columns.push_back(static_cast<int64_t>(t));
    labels += c + "\n";
  }
  if (columns.size() < 2) GTEST_SKIP() << "fewer than two captions usable as class names";
  const std::string labels_path = (work_ / "labels.txt").string(), templates_path = (work_ / "templates.txt").string();
  write_file(labels_path, labels);
  write_file(templates_path, "{}\n");
  const std::string bad = (work_ / "not_an_image.png").string();
  write_file(bad, "not an image");
  const auto column_index = at::tensor(columns, at::kLong);

  for (const std::string mode : {"c", "g"}) {
    SCOPED_TRACE("mode " + mode);
    auto args = base("classify");
    args.insert(args.end(), {"--mode", mode, "--labels", labels_path, "--templates", templates_path, "--json",
                             "--batch-size", "3", "--top-k", std::to_string(columns.size())});
    args.insert(args.end(), images_.begin(), images_.end());
    args.push_back(bad);
    const auto run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    const auto doc = parse_json(run);
    ASSERT_EQ(doc["results"].size(), images_.size()) << run.out;
    ASSERT_EQ(doc["skipped"].size(), 1u) << run.out;
    const auto logits = reference_tensor(fixture_, mode + ".logits_per_image").index_select(1, column_index);
    const auto probs = at::softmax(logits, 1);
    for (size_t i = 0; i < images_.size(); ++i) {
      SCOPED_TRACE(image_names_[i]);
      const auto& result = doc["results"][i];
      EXPECT_EQ(result["image"].get<std::string>(), images_[i]);
      ASSERT_EQ(result["top"].size(), columns.size());
      double total = 0;
      for (const auto& entry : result["top"]) {
        const auto c = entry["class_index"].get<int64_t>();
        EXPECT_EQ(entry["label"].get<std::string>(), captions_[static_cast<size_t>(columns[static_cast<size_t>(c)])]);
        EXPECT_NEAR(entry["probability"].get<double>(), probs[static_cast<int64_t>(i)][c].item<float>(), 1e-4);
        total += entry["probability"].get<double>();
      }
      EXPECT_NEAR(total, 1.0, 1e-4);
      const int64_t best = clear_argmax(logits[static_cast<int64_t>(i)]);
      if (best >= 0) EXPECT_EQ(result["top"][0]["class_index"].get<int64_t>(), best);
    }
  }
}

TEST_P(RetrieveTool, HtmlShowsTheImages) {
  const fs::path photos = work_ / "photos";
  make_photo_folder(photos);
  const std::string index = (work_ / "index.safetensors").string();
  auto args = base("index");
  args.insert(args.end(), {"--index", index, photos.string()});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);

  const std::string search_html = (work_ / "search.html").string();
  args = base("search");
  args.insert(args.end(), {"--index", index, "--top-k", std::to_string(images_.size()), "--html", search_html,
                           "--query=" + captions_.front()});
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  std::string page = read_file(search_html);
  EXPECT_TRUE(contains(page, "<img")) << page;
  for (size_t i = 1; i < image_names_.size(); ++i) EXPECT_TRUE(contains(page, image_names_[i])) << image_names_[i];

  const std::string embed_html = (work_ / "embed.html").string();
  args = base("embed");
  args.insert(args.end(), {"--html", embed_html});
  add_multi(args, "--images", images_);
  add_multi(args, "--texts", captions_);
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  page = read_file(embed_html);
  EXPECT_TRUE(contains(page, "<img")) << page;
  for (const auto& name : image_names_) EXPECT_TRUE(contains(page, name)) << name;

  const std::string labels_path = (work_ / "labels.txt").string(), classify_html = (work_ / "classify.html").string();
  write_file(labels_path, "cat\ndog\nbus\n");
  args = base("classify");
  args.insert(args.end(), {"--labels", labels_path, "--html", classify_html});
  args.insert(args.end(), images_.begin(), images_.end());
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  page = read_file(classify_html);
  EXPECT_TRUE(contains(page, "<img")) << page;
  for (const auto& name : image_names_) EXPECT_TRUE(contains(page, name)) << name;
}

TEST_P(RetrieveTool, HnswBackendIndexesAndSearches) {
  if (!internvl::Index::faiss_available()) GTEST_SKIP() << "built without FAISS";
  const fs::path photos = work_ / "photos_hnsw";
  const auto rows = make_photo_folder(photos);
  const std::string index = (work_ / "photos_hnsw.index").string();
  auto args = base("index");
  args.insert(args.end(), {"--backend", "hnsw", "--index", index, "--json", photos.string()});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(parse_json(run).value("size", -1), static_cast<int64_t>(images_.size())) << run.out;
  EXPECT_TRUE(fs::exists(index + ".json"));  // FAISS file + our metadata sidecar
  // An image query finds itself first (a small HNSW graph is exact).
  std::string query_image;
  for (const auto& [name, row] : rows) {
    if (row % 2 == 0) query_image = (photos / name).string();  // even rows sit in the folder itself
  }
  args = base("search");
  args.insert(args.end(), {"--index", index, "--json", "--query-image", query_image});
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  ASSERT_FALSE(doc["results"][0]["hits"].empty()) << run.out;
  EXPECT_EQ(fs::path(doc["results"][0]["hits"][0]["id"].get<std::string>()).filename().string(),
            fs::path(query_image).filename().string());
  args = base("index");
  args.insert(args.end(), {"--backend", "annoy", "--index", index, photos.string()});
  EXPECT_EQ(run_tool(args).status, 2);
}

// The repro of issue 17: an HNSW index overwritten by a flat one stays searchable, holds only the
// new images, and leaves no FAISS sidecar behind.
TEST_P(RetrieveTool, OverwritingAnHnswIndexWithAFlatOneKeepsItReadable) {
  if (!internvl::Index::faiss_available()) GTEST_SKIP() << "built without FAISS";
  ASSERT_GE(images_.size(), 2u);
  const std::string index = (work_ / "overwrite.index").string();
  auto args = base("index");
  args.insert(args.end(), {"--backend", "hnsw", "--index", index, images_[0]});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  ASSERT_TRUE(fs::exists(index + ".json"));
  args = base("index");
  args.insert(args.end(), {"--overwrite", "--index", index, "--json", images_[1]});
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(parse_json(run).value("size", -1), 1) << run.out;
  EXPECT_FALSE(fs::exists(index + ".json"));
  args = base("search");
  args.insert(args.end(), {"--index", index, "--json", "--query", "a photo"});
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  ASSERT_EQ(doc["results"][0]["hits"].size(), 1u) << run.out;
  EXPECT_EQ(doc["results"][0]["hits"][0]["id"].get<std::string>(), images_[1]);
}

TEST_P(RetrieveTool, RuntimeErrorsExitOne) {
  // Missing model folder.
  auto run = run_tool({"embed", "--model", (work_ / "no-such-model").string(), "--texts", "a"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
  // Missing and corrupt index.
  run = run_tool({"search", "--model", model_dir_, "--index", (work_ / "missing.safetensors").string(), "--query", "x"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
  const std::string corrupt = (work_ / "corrupt.safetensors").string();
  write_file(corrupt, std::string("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13));
  run = run_tool({"search", "--model", model_dir_, "--index", corrupt, "--query", "x"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
  // Missing input folder; output folder that does not exist.
  run = run_tool({"index", "--model", model_dir_, "--index", (work_ / "i.safetensors").string(),
                  (work_ / "nowhere").string()});
  EXPECT_EQ(run.status, 1) << describe(run);
  run = run_tool({"embed", "--model", model_dir_, "--texts", "a", "--save-embeddings", (work_ / "no/dir/x.safetensors").string()});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << run.err;
  // Labels file without names; template without {}.
  const std::string empty_labels = (work_ / "empty.txt").string(), templates = (work_ / "t.txt").string();
  write_file(empty_labels, "\n  \n");
  run = run_tool({"classify", "--model", model_dir_, "--labels", empty_labels, images_.front()});
  EXPECT_EQ(run.status, 1) << describe(run);
  write_file((work_ / "labels.txt").string(), "cat\n");
  write_file(templates, "a photo of a cat\n");
  run = run_tool({"classify", "--model", model_dir_, "--labels", (work_ / "labels.txt").string(), "--templates",
                  templates, images_.front()});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "{}")) << run.err;
  // Only unreadable images: a failure naming how many, not an empty success.
  const std::string broken = (work_ / "broken.jpg").string();
  write_file(broken, "not a jpeg");
  run = run_tool({"classify", "--model", model_dir_, "--labels", (work_ / "labels.txt").string(), broken});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "none of the 1 image(s) could be read")) << run.err;
  // One readable image among them still succeeds.
  run = run_tool({"classify", "--model", model_dir_, "--labels", (work_ / "labels.txt").string(), broken, images_.front()});
  EXPECT_EQ(run.status, 0) << describe(run);
}

// -m is --model: the same embeddings either way.
TEST_P(RetrieveTool, ShortModelFlagIsModel) {
  const auto long_run = run_tool({"embed", "--model", model_dir_, "--quiet", "--json", "--texts", captions_.front()});
  const auto short_run = run_tool({"embed", "-m", model_dir_, "--quiet", "--json", "--texts", captions_.front()});
  ASSERT_EQ(long_run.status, 0) << describe(long_run);
  ASSERT_EQ(short_run.status, 0) << describe(short_run);
  EXPECT_EQ(parse_json(short_run)["text_embeds"], parse_json(long_run)["text_embeds"]);
}

// The FAISS sidecar of an index (kind, nlist, ...).
json sidecar(const std::string& index) { return json::parse(read_file(index + ".json")); }

// Per image query: the hit ids, in order.
std::vector<std::vector<std::string>> search_ids(const json& doc) {
  std::vector<std::vector<std::string>> ids;
  for (const auto& result : doc["results"]) {
    ids.emplace_back();
    for (const auto& hit : result["hits"]) ids.back().push_back(hit["id"].get<std::string>());
  }
  return ids;
}

// --backend ivf is IVF-Flat: for a folder this small, one cell, i.e. the same ranking as flat; a
// later run adds to the trained index.
TEST_P(RetrieveTool, IvfBackendSearchesAsFlatAndResumes) {
  ASSERT_GE(images_.size(), 2u);
  const std::vector<std::string> first(images_.begin(), images_.end() - 1);
  const std::string ivf = (work_ / "ivf.index").string(), flat = (work_ / "flat.safetensors").string();
  auto args = base("index");
  args.insert(args.end(), {"--backend", "ivf", "--index", ivf, "--json", "--batch-size", "2"});
  args.insert(args.end(), first.begin(), first.end());
  auto run = run_tool(args);
  if (!internvl::Index::faiss_available()) {
    EXPECT_EQ(run.status, 1) << describe(run);
    EXPECT_TRUE(contains(run.err, "FAISS")) << run.err;
    return;
  }
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(parse_json(run).value("size", -1), static_cast<int64_t>(first.size())) << run.out;
  // Trained on all of them at once (not on the first batch of 2): cells for this many rows.
  const auto meta = sidecar(ivf);
  EXPECT_EQ(meta.value("kind", ""), "ivf-flat");
  EXPECT_EQ(meta.value("nlist", 0), 1) << meta.dump();

  args = base("index");  // resume: the last image joins the trained index
  args.insert(args.end(), {"--index", ivf, "--json"});
  args.insert(args.end(), images_.begin(), images_.end());
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(parse_json(run).value("added", -1), 1) << run.out;

  args = base("index");
  args.insert(args.end(), {"--index", flat});
  args.insert(args.end(), images_.begin(), images_.end());
  ASSERT_EQ(run_tool(args).status, 0);
  const auto top_k = std::to_string(images_.size());
  json docs[2];
  for (int b = 0; b < 2; ++b) {
    args = base("search");
    args.insert(args.end(), {"--index", b == 0 ? ivf : flat, "--json", "--top-k", top_k});
    for (const auto& image : images_) args.insert(args.end(), {"--query-image", image});
    run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    docs[b] = parse_json(run);
  }
  EXPECT_EQ(search_ids(docs[0]), search_ids(docs[1]));
  for (size_t q = 0; q < images_.size(); ++q) {
    for (size_t h = 0; h < docs[1]["results"][q]["hits"].size(); ++h) {
      EXPECT_NEAR(docs[0]["results"][q]["hits"][h]["score"].get<double>(),
                  docs[1]["results"][q]["hits"][h]["score"].get<double>(), 1e-4);
    }
  }
}

// Enough images for several cells: the cells are sized to the run (about 39 rows each, FAISS's
// k-means minimum), and every image still finds itself (or an identical copy) first.
TEST_P(RetrieveTool, IvfBackendSizesCellsToTheImages) {
  if (!internvl::Index::faiss_available()) GTEST_SKIP() << "built without FAISS";
  constexpr size_t kTwoCells = 2 * 39;
  const fs::path photos = work_ / "many";
  fs::create_directories(photos);
  size_t count = 0;
  for (size_t copy = 0; count < kTwoCells; ++copy) {
    for (size_t i = 0; i < images_.size(); ++i, ++count) {
      fs::copy_file(images_[i], photos / (std::to_string(copy) + "_" + image_names_[i]));
    }
  }
  const std::string index = (work_ / "many.index").string();
  auto args = base("index");
  args.insert(args.end(), {"--backend", "ivf", "--index", index, "--json", "--batch-size", "16", photos.string()});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(parse_json(run).value("size", -1), static_cast<int64_t>(count)) << run.out;
  EXPECT_GE(sidecar(index).value("nlist", 0), 2) << sidecar(index).dump();
  args = base("search");
  args.insert(args.end(), {"--index", index, "--json", "--top-k", "1"});
  for (const auto& image : images_) args.insert(args.end(), {"--query-image", image});
  run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  for (const auto& result : doc["results"]) {
    ASSERT_EQ(result["hits"].size(), 1u) << run.out;
    EXPECT_GT(result["hits"][0]["score"].get<double>(), 0.999) << result.dump();
  }
}

// One file by several paths (a link to it, a linked folder, a "/./" spelling) is indexed once,
// under the first spelling, and the tool says how many duplicates it skipped.
TEST_P(RetrieveTool, SameFileByTwoPathsIsIndexedOnce) {
  const fs::path work = work_.lexically_normal();  // as the tool writes ids
  const fs::path photos = work / "photos", alias = work / "alias", link = work / "link.jpg";
  fs::create_directories(photos);
  for (size_t i = 0; i < images_.size(); ++i) fs::copy_file(images_[i], photos / image_names_[i]);
  fs::create_directory_symlink(photos, alias);
  fs::create_symlink(photos / image_names_.front(), link);
  const std::string dotted = photos.string() + "/./" + image_names_.back();
  const std::string index = (work_ / "dups.safetensors").string();
  const auto n = images_.size();
  const auto run = run_tool({"index", "--model", model_dir_, "--index", index, "--json", photos.string(),
                             link.string(), alias.string(), dotted});
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  EXPECT_EQ(doc.value("added", -1), static_cast<int64_t>(n)) << run.out;
  EXPECT_EQ(doc.value("size", -1), static_cast<int64_t>(n)) << run.out;
  // The link, every file of the linked folder and the dotted spelling: n + 2.
  EXPECT_TRUE(contains(run.err, "skipped " + std::to_string(n + 2) + " duplicate(s)")) << run.err;
  const auto ids = internvl::Index::load(index).ids();
  for (const auto& id : ids) EXPECT_EQ(fs::path(id).parent_path(), photos) << id;
  // Without duplicates nothing is said about them.
  const auto again = run_tool({"index", "--model", model_dir_, "--index", index, photos.string()});
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_FALSE(contains(again.err, "duplicate")) << again.err;
}

// index --prune with no PATH drops every entry whose file is gone (wherever it is), adds nothing
// and needs no --model; the entries whose files are there stay.
TEST_P(RetrieveTool, PruneWithoutPathsDropsDeletedFiles) {
  if (images_.size() < 2) GTEST_SKIP() << "needs two images";
  const fs::path work = work_.lexically_normal();  // as the tool writes ids
  const fs::path first = work / "first", second = work / "second";
  fs::create_directories(first);
  fs::create_directories(second);
  for (size_t i = 0; i < images_.size(); ++i) fs::copy_file(images_[i], first / image_names_[i]);
  fs::copy_file(images_.front(), second / image_names_.front());
  const std::string index = (work_ / "prune.safetensors").string();
  auto args = base("index");
  args.insert(args.end(), {"--index", index, first.string(), second.string()});
  auto run = run_tool(args);
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto before = static_cast<int64_t>(images_.size() + 1);
  ASSERT_EQ(internvl::Index::load(index).size(), before);
  const fs::path deleted_first = first / image_names_.back(), deleted_second = second / image_names_.front();
  fs::remove(deleted_first);
  fs::remove(deleted_second);
  // A new image in a folder is not added: --prune alone only removes.
  fs::copy_file(images_.front(), second / ("new_" + image_names_.front()));

  run = run_tool({"index", "--index", index, "--prune", "--json"});
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto doc = parse_json(run);
  EXPECT_EQ(doc.value("removed", -1), 2) << run.out;
  EXPECT_EQ(doc.value("added", -1), 0) << run.out;
  EXPECT_EQ(doc.value("size", -1), before - 2) << run.out;
  const auto loaded = internvl::Index::load(index);
  EXPECT_EQ(loaded.size(), before - 2);
  EXPECT_FALSE(loaded.contains(deleted_first.string()));
  EXPECT_FALSE(loaded.contains(deleted_second.string()));
  EXPECT_TRUE(loaded.contains((first / image_names_.front()).string()));
  EXPECT_FALSE(contains(run.err, "loading")) << "no model is loaded\n" << run.err;
  // The text report, with --model given (ignored): nothing more to remove.
  run = run_tool({"index", "--model", model_dir_, "--index", index, "--prune"});
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.out, "0 removed")) << run.out;
  // No index to prune is an error naming it; without --prune a PATH is still required.
  const std::string missing = (work_ / "none.safetensors").string();
  run = run_tool({"index", "--index", missing, "--prune"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, missing)) << run.err;
  EXPECT_EQ(run_tool({"index", "--model", model_dir_, "--index", index}).status, 2);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RetrieveTool,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RetrieveTool);

// Bad command lines: a message and exit status 2, before any model is loaded.
TEST(RetrieveToolUsage, BadUsageExitsTwo) {
  if (tool_path().empty() || !fs::exists(tool_path())) GTEST_SKIP() << "internvl-retrieve not built";
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"bogus"},
      {"--model", "m"},
      {"search", "--model", "m", "--query", "x"},                       // no --index
      {"search", "--model", "m", "--index", "i"},                       // no query
      {"embed", "--model", "m"},                                        // nothing to embed
      {"embed", "--texts", "a"},                                        // no --model
      {"embed", "--model", "m", "--texts", "a", "--top-k", "0"},
      {"embed", "--model", "m", "--texts", "a", "--batch-size", "x"},
      {"embed", "--model", "m", "--texts", "a", "--frobnicate"},
      {"embed", "--model", "m", "--texts", "a", "--mode", "q"},
      {"embed", "--model", "m", "--texts", "a", "--device", "tpu"},
      {"embed", "--model", "m", "--texts", "a", "--dtype", "int3"},
      {"embed", "--model", "m", "--images"},                            // flag without values
      {"index", "--model", "m", "--index", "i", "--labels", "l", "dir"},  // option of another command
      {"classify", "--model", "m", "img.jpg"},                          // no --labels
      {"search", "--model", "m", "--index"},
      {"index", "-m", "m", "--index", "i", "--backend", "annoy", "dir"},
      {"-m", "m", "index"},                                             // no command first
  };
  for (const auto& args : cases) {
    std::string line;
    for (const auto& a : args) line += " " + a;
    SCOPED_TRACE(line);
    const auto run = run_tool(args);
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_FALSE(run.err.empty());
  }
  for (const std::vector<std::string> help : {std::vector<std::string>{"--help"}, {"help", "search"}, {"index", "-h"}}) {
    const auto run = run_tool(help);
    EXPECT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, "usage:")) << run.out;
  }
}

TEST(RetrieveToolUsage, VersionPrintsTheLibraryVersion) {
  if (tool_path().empty() || !fs::exists(tool_path())) GTEST_SKIP() << "internvl-retrieve not built";
  for (const std::vector<std::string> args : {std::vector<std::string>{"--version"}, {"search", "--version"}}) {
    const auto run = run_tool(args);
    EXPECT_EQ(run.status, 0) << describe(run);
    EXPECT_EQ(run.out, std::string("internvl-retrieve ") + INTERNVL_VERSION_STRING + "\n");
  }
}

// A flag or command one or two edits from a real one is named in the error; a far one is not.
TEST(RetrieveToolUsage, UnknownFlagSuggestsTheNearestOne) {
  if (tool_path().empty() || !fs::exists(tool_path())) GTEST_SKIP() << "internvl-retrieve not built";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"search", "--model", "m", "--idnex", "i", "--query", "x"}, "--index"},
      {{"search", "--model", "m", "--index", "i", "--qurey", "x"}, "--query"},
      {{"index", "--model", "m", "--index", "i", "--backnd=ivf", "d"}, "--backend"},
      {{"embed", "--modle", "m", "--texts", "a"}, "--model"},
      {{"index", "--model", "m", "--index", "i", "-json", "d"}, "--json"},  // one dash
      {{"serch", "--model", "m"}, "search"},
  };
  for (const auto& [args, suggestion] : cases) {
    SCOPED_TRACE(args[0] + " ... " + suggestion);
    const auto run = run_tool(args);
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_TRUE(contains(run.err, "did you mean " + suggestion + "?")) << run.err;
  }
  const auto run = run_tool({"embed", "--model", "m", "--texts", "a", "--frobnicate"});
  EXPECT_EQ(run.status, 2) << describe(run);
  EXPECT_FALSE(contains(run.err, "did you mean")) << run.err;
}

}  // namespace

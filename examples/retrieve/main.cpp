// internvl-retrieve: image search and zero-shot classification with InternVL-C / InternVL-G.
//
//   internvl-retrieve index    --model DIR --index FILE PATH...          embed a folder into an index
//   internvl-retrieve search   --model DIR --index FILE --query TEXT...  rank the indexed images
//   internvl-retrieve classify --model DIR --labels FILE PATH...         zero-shot classification
//   internvl-retrieve embed    --model DIR --images P... --texts T...    embeddings, similarity matrix
//
// Uses only the public API (internvl/internvl.h). See README.md and `internvl-retrieve --help`.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../common/user_terms.h"
#include "cli.h"
#include "html.h"
#include "internvl/internvl.h"
#include "prune.h"
#include "safetensors_out.h"
#include "util.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace retrieve {
namespace {

// ---- shared helpers ----------------------------------------------------------------------------

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) { g_interrupted = true; }

// Ctrl-C (or SIGTERM) stops after the current batch, so what is done can be saved; a second one
// kills the process as usual.
void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

const char* mode_name(internvl::EmbedMode mode) {
  return mode == internvl::EmbedMode::kG ? "InternVL-G" : "InternVL-C";
}

void print_json(const json& document) {
  const std::string text = document.dump(2, ' ', false, json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

// Fails early (before loading a model) when an output cannot be written where asked.
void check_output_path(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw ToolError(option + " " + path + ": folder '" + folder.string() + "' does not exist");
  if (fs::is_directory(target, ec)) throw ToolError(option + " " + path + " is a folder");
}

// The parts of the checkpoint that embedding images in `mode` and/or texts needs: a text search
// never reads the vision tower (InternVL-G images need QLLaMA too).
internvl::ModelParts parts_for(bool images, bool texts, internvl::EmbedMode mode) {
  auto parts = internvl::ModelParts::kNone;
  if (images) parts = parts | internvl::ModelParts::kVision;
  if (texts || (images && mode == internvl::EmbedMode::kG)) parts = parts | internvl::ModelParts::kText;
  return parts;
}

internvl::Model load_model(const Args& args, internvl::ModelParts parts) {
  const auto start = std::chrono::steady_clock::now();
  info("loading " + args.model_dir + " (" + internvl::to_string(args.load.device) + ", " +
       internvl::to_string(args.load.dtype) + ") ...");
  auto load = args.load;
  load.parts = parts;
  auto model = internvl::Model::load(args.model_dir, load);
  info("loaded " + model.info().architecture + " in " + fixed(seconds_since(start), 2) + " s");
  return model;
}

internvl::EmbedOptions embed_options(const Args& args, internvl::EmbedMode mode) {
  internvl::EmbedOptions options;
  options.mode = mode;
  options.batch_size = args.batch_size;
  options.normalize = false;
  return options;
}

std::vector<internvl::Image> open_images(const std::vector<std::string>& paths) {
  std::vector<internvl::Image> images;
  images.reserve(paths.size());
  for (const auto& path : paths) images.push_back(internvl::Image::from_file(path));
  return images;
}

struct Skipped {
  std::string path;
  std::string error;
};

// After a batch failed with ImageError: `work` on each of its images alone, skipping (and
// reporting) only the unreadable ones.
template <typename Work>
void one_at_a_time(const std::vector<std::string>& batch, std::vector<Skipped>& skipped, Work&& work) {
  for (const auto& path : batch) {
    try {
      work(std::vector<std::string>{path});
    } catch (const internvl::ImageError& e) {
      const std::string what = e.what();  // library messages usually name the file already
      warn("skipping unreadable image " + (what.find(path) != std::string::npos ? what : path + ": " + what));
      skipped.push_back({path, e.what()});
    }
  }
}

// Runs `work(paths)` on batches of `batch_size` paths with a progress display. A batch that fails
// with ImageError is retried one image at a time, so only the unreadable images are skipped (and
// reported). Stops early after Ctrl-C; `after_batch` runs after every batch (periodic saves).
template <typename Work, typename AfterBatch>
void run_batches(const std::string& label, const std::vector<std::string>& paths, int batch_size,
                 std::vector<Skipped>& skipped, Work&& work, AfterBatch&& after_batch) {
  Progress progress(label, static_cast<int64_t>(paths.size()));
  for (size_t start = 0; start < paths.size() && !g_interrupted; start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(paths.size(), start + static_cast<size_t>(batch_size));
    const std::vector<std::string> batch(paths.begin() + static_cast<std::ptrdiff_t>(start),
                                         paths.begin() + static_cast<std::ptrdiff_t>(end));
    try {
      work(batch);
    } catch (const internvl::ImageError&) {
      one_at_a_time(batch, skipped, work);
    }
    progress.update(static_cast<int64_t>(end));
    after_batch();
  }
  progress.finish();
}

// run_batches for embeddings, in one embed_image call (EmbedOptions::on_batch) so the library
// decodes the next batch while the current one runs; `add(paths, rows)` receives each batch. A
// batch that fails with ImageError is retried one image at a time as in run_batches, then a new
// call carries on after it.
template <typename Add, typename AfterBatch>
void embed_batches(const internvl::Model& model, internvl::EmbedOptions options, const std::vector<std::string>& paths,
                   std::vector<Skipped>& skipped, Add&& add, AfterBatch&& after_batch) {
  Progress progress("indexing", static_cast<int64_t>(paths.size()));
  const size_t batch_size = static_cast<size_t>(options.batch_size);
  size_t next = 0;  // paths before it are embedded or skipped
  while (next < paths.size() && !g_interrupted) {
    const std::vector<std::string> rest(paths.begin() + static_cast<std::ptrdiff_t>(next), paths.end());
    size_t done = 0;  // of `rest`
    options.on_batch = [&](int64_t first, const internvl::Matrix& rows) {
      const auto begin = rest.begin() + static_cast<std::ptrdiff_t>(first);
      add(std::vector<std::string>(begin, begin + static_cast<std::ptrdiff_t>(rows.rows())), rows);
      done = static_cast<size_t>(first + rows.rows());
      progress.update(static_cast<int64_t>(next + done));
      after_batch();
      return !g_interrupted;
    };
    try {
      model.embed_image(open_images(rest), options);
      next += done;
      if (done < rest.size()) break;  // stopped by Ctrl-C
    } catch (const internvl::ImageError&) {
      next += done;  // the batch starting here failed
      const size_t end = std::min(paths.size(), next + batch_size);
      options.on_batch = nullptr;
      one_at_a_time(std::vector<std::string>(paths.begin() + static_cast<std::ptrdiff_t>(next),
                                             paths.begin() + static_cast<std::ptrdiff_t>(end)),
                    skipped, [&](const std::vector<std::string>& one) {
                      add(one, model.embed_image(open_images(one), options));
                    });
      progress.update(static_cast<int64_t>(end));
      after_batch();
      next = end;
    }
  }
  progress.finish();
}

json skipped_json(const std::vector<Skipped>& skipped) {
  json out = json::array();
  for (const auto& s : skipped) out.push_back({{"path", s.path}, {"error", s.error}});
  return out;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r\n\f\v");
  return text.substr(first, last - first + 1);
}

// ---- index -------------------------------------------------------------------------------------

// FAISS's k-means wants about 39 training rows per cell (fewer: a warning and empty cells), and
// ~4 sqrt(N) cells is its usual advice; one cell is exact search, right for a small folder.
constexpr int64_t kRowsPerCell = 39;

int ivf_cells(int64_t rows) {
  const auto by_rows = rows / kRowsPerCell;
  const auto by_sqrt = static_cast<int64_t>(4 * std::sqrt(static_cast<double>(rows)));
  return static_cast<int>(std::clamp<int64_t>(std::min(by_rows, by_sqrt), 1, 1024));
}

internvl::IndexOptions index_options_for(const std::string& backend, int64_t rows) {
  internvl::IndexOptions options;
  options.backend = backend;
  if (backend == "ivf-flat") {
    options.nlist = ivf_cells(rows);
    options.nprobe = std::min(options.nprobe, options.nlist);
  }
  return options;
}

int run_index(const Args& args) {
  check_output_path("--index", args.index_path);
  if (args.images.empty()) return run_prune_only(args);  // cli allows no PATH only with --prune
  const auto start = std::chrono::steady_clock::now();

  std::optional<internvl::Index> index;
  std::error_code ec;
  const bool existed = !args.overwrite && fs::exists(args.index_path, ec);
  if (existed) {
    try {
      index = internvl::Index::load(args.index_path);
    } catch (const internvl::Error& e) {
      throw ToolError(std::string(e.what()) + " (--overwrite starts a new index)");
    }
  }
  int64_t ignored = 0;
  const auto files = collect_images(args.images, /*absolute=*/true, &ignored);

  const auto model =
      load_model(args, parts_for(true, false, index ? index->mode() : args.mode.value_or(internvl::EmbedMode::kC)));
  if (index) {
    if (index->model_id() != model.model_id()) {
      throw ToolError("index " + args.index_path + " holds embeddings of model '" + index->model_id() + "', but " +
                      args.model_dir + " is '" + model.model_id() +
                      "'; use the same model, another --index, or --overwrite");
    }
    if (args.mode && *args.mode != index->mode()) {
      throw ToolError("index " + args.index_path + " holds " + mode_name(index->mode()) + " embeddings, not " +
                      mode_name(*args.mode) + "; use another --index or --overwrite");
    }
  } else {
    if (args.backend != "flat" && !internvl::Index::faiss_available()) {
      throw ToolError("--backend " + std::string(args.backend == "ivf-flat" ? "ivf" : args.backend) +
                      " needs a build with FAISS (Debian libfaiss-dev); this one has only flat");
    }
    // An IVF index's cells are sized when it is trained, below; this one is a placeholder.
    index = model.create_index(args.mode.value_or(internvl::EmbedMode::kC), index_options_for(args.backend, 0));
  }
  const internvl::EmbedMode mode = index->mode();

  // --prune: entries below the given folders (or equal to given files) whose file is gone.
  int64_t removed = 0;
  if (args.prune) {
    const auto gone = entries_gone(index->ids(), args.images);
    if (!gone.empty()) removed = index->remove(gone);
  }

  std::vector<std::string> todo;
  for (const auto& file : files) {
    if (!index->contains(file)) todo.push_back(file);
  }
  const int64_t already = static_cast<int64_t>(files.size() - todo.size());
  info("found " + std::to_string(files.size()) + " image(s)" +
       (ignored > 0 ? " (" + std::to_string(ignored) + " other file(s) ignored)" : std::string()) + ": " +
       std::to_string(already) + " already indexed, " + std::to_string(todo.size()) + " to embed (" +
       mode_name(mode) + ", batch " + std::to_string(args.batch_size) + ")");
  if (files.empty()) warn("no images found in " + std::to_string(args.images.size()) + " path(s)");

  const auto options = embed_options(args, mode);
  std::vector<Skipped> skipped;
  int64_t added = 0;
  int batches_since_save = 0;

  // IVF-Flat learns its cells (k-means) from the first rows it is given and keeps them: trained on
  // one batch it would be a bad index for good. So while it is empty, embeddings wait here until
  // there are enough to train cells sized for this run's images, and go in together.
  const bool train_ivf = index->backend() == "ivf-flat" && index->size() == 0 && !todo.empty();
  const int64_t train_rows =
      train_ivf ? std::min<int64_t>(static_cast<int64_t>(todo.size()), kRowsPerCell * ivf_cells(todo.size())) : 0;
  std::vector<std::string> pending_ids;
  std::vector<internvl::Matrix> pending;
  int64_t pending_rows = 0;
  bool training = train_ivf;
  auto train_and_add = [&] {
    if (!training) return;
    training = false;
    if (pending_rows == 0) return;
    // Cells for the rows there are (fewer than planned after skipped images or Ctrl-C).
    index = model.create_index(mode, index_options_for("ivf-flat", pending_rows));
    internvl::Matrix rows(pending_rows, pending.front().cols());
    Eigen::Index row = 0;
    for (const auto& part : pending) {
      rows.middleRows(row, part.rows()) = part;
      row += part.rows();
    }
    index->add(pending_ids, rows);
    added += pending_rows;
    info("trained the IVF index on " + std::to_string(pending_rows) + " embedding(s): " +
         std::to_string(ivf_cells(pending_rows)) + " cell(s)" +
         (ivf_cells(pending_rows) == 1 ? " (one cell: exact search; more from " + std::to_string(2 * kRowsPerCell) +
                                             " images on)"
                                       : std::string()));
    pending.clear();
    pending_ids.clear();
    pending_rows = 0;
  };
  const auto embed_start = std::chrono::steady_clock::now();
  install_interrupt_handler();
  try {
    embed_batches(
        model, options, todo, skipped,
        [&](const std::vector<std::string>& paths, const internvl::Matrix& embeddings) {
          if (training) {
            pending_ids.insert(pending_ids.end(), paths.begin(), paths.end());
            pending_rows += embeddings.rows();
            pending.push_back(embeddings);
            if (pending_rows >= train_rows) train_and_add();
            return;
          }
          index->add(paths, embeddings);
          added += static_cast<int64_t>(paths.size());
        },
        [&] {
          if (training) return;  // nothing in the index yet to save
          if (args.save_every > 0 && ++batches_since_save >= args.save_every && !g_interrupted) {
            index->save(args.index_path);
            batches_since_save = 0;
          }
        });
  } catch (...) {
    if (added > 0) {  // keep what was embedded: the next run resumes from here
      try {
        index->save(args.index_path);
        warn("saved the " + std::to_string(index->size()) + " embeddings done so far to " + args.index_path);
      } catch (...) {
      }
    }
    throw;
  }
  train_and_add();  // after skipped images or Ctrl-C: on what there is
  const double embed_seconds = seconds_since(embed_start);
  if (!existed || added > 0 || removed > 0) index->save(args.index_path);

  const bool interrupted = g_interrupted;
  if (args.json) {
    json out = {{"command", "index"},
                {"index", args.index_path},
                {"model_id", model.model_id()},
                {"mode", internvl::to_string(mode)},
                {"found", files.size()},
                {"already_indexed", already},
                {"added", added},
                {"skipped", skipped_json(skipped)},
                {"removed", removed},
                {"ignored_files", ignored},
                {"size", index->size()},
                {"interrupted", interrupted},
                {"seconds", seconds_since(start)},
                {"images_per_second", embed_seconds > 0 && added > 0 ? added / embed_seconds : 0.0}};
    print_json(out);
  } else {
    std::printf("%s: %lld new embedding(s), %lld already indexed, %zu skipped (unreadable), %lld removed; "
                "the index holds %lld image(s) (%s)\n",
                args.index_path.c_str(), static_cast<long long>(added), static_cast<long long>(already),
                skipped.size(), static_cast<long long>(removed), static_cast<long long>(index->size()),
                mode_name(mode));
    if (added > 0) {
      info("embedded " + std::to_string(added) + " image(s) in " + format_duration(embed_seconds) + " (" +
           fixed(added / std::max(embed_seconds, 1e-9), 2) + " images/s)");
    }
  }
  if (interrupted) {
    warn("interrupted: run the same command again to index the remaining images");
    return 130;
  }
  return 0;
}

// ---- search ------------------------------------------------------------------------------------

int run_search(const Args& args) {
  check_output_path("--html", args.html);
  const auto index = internvl::Index::load(args.index_path);
  if (args.mode && *args.mode != index.mode()) {
    throw ToolError("index " + args.index_path + " holds " + mode_name(index.mode()) + " embeddings, not " +
                    mode_name(*args.mode) + " (leave --mode out to use the index's)");
  }
  bool image_queries = false, text_queries = false;
  for (const auto& query : args.queries) (query.is_image ? image_queries : text_queries) = true;
  const auto model = load_model(args, parts_for(image_queries, text_queries, index.mode()));
  if (index.model_id() != model.model_id()) {
    throw ToolError("index " + args.index_path + " holds embeddings of model '" + index.model_id() + "', but " +
                    args.model_dir + " is '" + model.model_id() + "'");
  }
  if (index.size() == 0) warn("index " + args.index_path + " is empty");

  std::vector<std::string> texts, image_paths;
  for (const auto& query : args.queries) (query.is_image ? image_paths : texts).push_back(query.value);
  for (const auto& path : image_paths) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw ToolError("--query-image: no such file: '" + path + "'");
  }
  const auto text_hits = texts.empty() ? std::vector<std::vector<internvl::SearchHit>>()
                                       : model.retrieve(texts, index, args.top_k, args.batch_size);
  const auto image_hits = image_paths.empty()
                              ? std::vector<std::vector<internvl::SearchHit>>()
                              : model.retrieve(open_images(image_paths), index, args.top_k, args.batch_size);

  // Back to command-line order.
  std::vector<const std::vector<internvl::SearchHit>*> hits;
  size_t next_text = 0, next_image = 0;
  for (const auto& query : args.queries) hits.push_back(query.is_image ? &image_hits[next_image++] : &text_hits[next_text++]);

  if (args.json) {
    json results = json::array();
    for (size_t q = 0; q < args.queries.size(); ++q) {
      json list = json::array();
      int rank = 1;
      for (const auto& hit : *hits[q]) list.push_back({{"rank", rank++}, {"score", hit.score}, {"id", hit.id}, {"row", hit.row}});
      results.push_back({{"query", args.queries[q].value},
                         {"type", args.queries[q].is_image ? "image" : "text"},
                         {"hits", std::move(list)}});
    }
    print_json({{"command", "search"},
                {"index", args.index_path},
                {"mode", internvl::to_string(index.mode())},
                {"size", index.size()},
                {"top_k", args.top_k},
                {"results", std::move(results)}});
  } else {
    for (size_t q = 0; q < args.queries.size(); ++q) {
      std::printf("%squery %zu (%s): %s\n", q > 0 ? "\n" : "", q + 1, args.queries[q].is_image ? "image" : "text",
                  quoted(args.queries[q].value).c_str());
      if (hits[q]->empty()) std::printf("  (no results)\n");
      else std::printf("  rank   score  id\n");
      int rank = 1;
      for (const auto& hit : *hits[q]) {
        std::printf("  %4d  %6.4f  %s\n", rank++, hit.score, printable(hit.id).c_str());
      }
    }
  }

  if (!args.html.empty()) {
    std::vector<GallerySection> sections;
    for (size_t q = 0; q < args.queries.size(); ++q) {
      GallerySection section;
      const auto& query = args.queries[q];
      section.heading = query.is_image ? "image: " + query.value : "\u201c" + query.value + "\u201d";
      if (query.is_image) section.heading_image = query.value;
      int rank = 1;
      for (const auto& hit : *hits[q]) section.items.push_back({hit.id, "#" + std::to_string(rank++) + "  " + fixed(hit.score, 4), {}});
      sections.push_back(std::move(section));
    }
    const std::string page = render_gallery(
        args.html, "internvl-retrieve search",
        std::to_string(index.size()) + " images in " + args.index_path + " (" + mode_name(index.mode()) +
            "), top " + std::to_string(args.top_k) + " by cosine similarity",
        sections);
    write_file_atomically(args.html, {page});
    info("wrote " + args.html);
  }
  return 0;
}

// ---- classify ----------------------------------------------------------------------------------

int run_classify(const Args& args) {
  check_output_path("--html", args.html);
  std::vector<std::string> labels;
  for (const auto& line : read_lines(args.labels_path)) {
    auto label = trim(line);
    if (!label.empty()) labels.push_back(std::move(label));
  }
  if (labels.empty()) throw ToolError("no class names in " + args.labels_path);
  std::vector<std::string> templates;
  if (args.templates_path.empty()) {
    templates = internvl::Model::default_templates();
  } else {
    const auto lines = read_lines(args.templates_path);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (trim(lines[i]).empty()) continue;
      if (lines[i].find("{}") == std::string::npos) {
        throw ToolError(args.templates_path + ":" + std::to_string(i + 1) + ": template " + quoted(lines[i]) +
                        " has no {} placeholder");
      }
      templates.push_back(lines[i]);
    }
    if (templates.empty()) throw ToolError("no templates in " + args.templates_path);
  }
  int64_t ignored = 0;
  const auto files = collect_images(args.images, /*absolute=*/false, &ignored);
  if (files.empty()) warn("no images found");

  const auto model = load_model(args, parts_for(true, true, args.mode.value_or(internvl::EmbedMode::kC)));
  const internvl::EmbedMode mode = args.mode.value_or(internvl::EmbedMode::kC);
  const auto options = embed_options(args, mode);
  info("encoding " + std::to_string(labels.size()) + " class(es) x " + std::to_string(templates.size()) +
       " template(s) ...");
  const auto weights = model.zero_shot_weights(labels, templates, options);
  const int k = std::min<int>(args.top_k, static_cast<int>(labels.size()));

  std::vector<std::pair<std::string, std::vector<internvl::ClassScore>>> results;
  std::vector<Skipped> skipped;
  install_interrupt_handler();
  run_batches(
      "classifying", files, args.batch_size, skipped,
      [&](const std::vector<std::string>& paths) {
        auto scores = model.classify(open_images(paths), weights, labels, k, options);
        for (size_t i = 0; i < paths.size(); ++i) results.emplace_back(paths[i], std::move(scores[i]));
      },
      [] {});
  const bool interrupted = g_interrupted;

  if (args.json) {
    json list = json::array();
    for (const auto& [path, scores] : results) {
      json top = json::array();
      int rank = 1;
      for (const auto& s : scores) {
        top.push_back({{"rank", rank++}, {"label", s.label}, {"class_index", s.class_index},
                       {"probability", s.probability}, {"score", s.score}});
      }
      list.push_back({{"image", path}, {"top", std::move(top)}});
    }
    print_json({{"command", "classify"},
                {"mode", internvl::to_string(mode)},
                {"labels", labels},
                {"templates", templates.size()},
                {"top_k", k},
                {"results", std::move(list)},
                {"skipped", skipped_json(skipped)},
                {"interrupted", interrupted}});
  } else {
    for (size_t r = 0; r < results.size(); ++r) {
      std::printf("%s%s\n", r > 0 ? "\n" : "", printable(results[r].first).c_str());
      int rank = 1;
      for (const auto& s : results[r].second) {
        std::printf("  %2d  %6.2f%%  %7.4f  %s\n", rank++, 100.0 * s.probability, s.score, printable(s.label).c_str());
      }
    }
    if (!skipped.empty()) std::printf("\n%zu image(s) skipped (unreadable)\n", skipped.size());
  }

  if (!args.html.empty()) {
    GallerySection section;
    section.heading = std::to_string(results.size()) + " image(s), " + std::to_string(labels.size()) + " classes";
    for (const auto& [path, scores] : results) {
      GalleryItem item{path, scores.empty() ? "" : scores.front().label, {}};
      for (const auto& s : scores) item.bars.emplace_back(s.label, s.probability);
      section.items.push_back(std::move(item));
    }
    const std::string page = render_gallery(
        args.html, "internvl-retrieve classify",
        "zero-shot, " + std::string(mode_name(mode)) + ", labels from " + args.labels_path + ", " +
            std::to_string(templates.size()) + " template(s); probabilities are a softmax over all classes",
        {section});
    write_file_atomically(args.html, {page});
    info("wrote " + args.html);
  }
  if (interrupted) return 130;
  // Nothing classified because nothing could be read is a failure, not an empty success.
  if (results.empty() && !skipped.empty()) {
    std::fprintf(stderr, "error: none of the %zu image(s) could be read\n", skipped.size());
    return 1;
  }
  return 0;
}

// ---- embed -------------------------------------------------------------------------------------

json matrix_json(const internvl::Matrix& m) {
  json rows = json::array();
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    json row = json::array();
    for (Eigen::Index c = 0; c < m.cols(); ++c) row.push_back(m(r, c));
    rows.push_back(std::move(row));
  }
  return rows;
}

// Images of one text, best first: (image row, logit).
std::vector<std::pair<Eigen::Index, float>> ranking(const internvl::Matrix& logits, Eigen::Index text, int k) {
  std::vector<std::pair<Eigen::Index, float>> order;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) order.emplace_back(i, logits(i, text));
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (static_cast<int64_t>(order.size()) > k) order.resize(static_cast<size_t>(k));
  return order;
}

int run_embed(const Args& args) {
  check_output_path("--save-embeddings", args.save_embeddings);
  check_output_path("--html", args.html);
  const auto images = collect_images(args.images, /*absolute=*/false, nullptr);
  const bool have_images = !args.images.empty();
  const bool have_texts = !args.texts.empty();

  const auto model =
      load_model(args, parts_for(have_images, have_texts, args.mode.value_or(internvl::EmbedMode::kC)));
  const internvl::EmbedMode mode = args.mode.value_or(internvl::EmbedMode::kC);
  const auto options = embed_options(args, mode);

  // Images in batches of our own, for the progress display; any unreadable image is an error
  // here (the rows must match the inputs).
  internvl::Matrix image_embeds;
  {
    std::vector<internvl::Matrix> parts;
    Eigen::Index rows = 0;
    Progress progress("embedding", static_cast<int64_t>(images.size()));
    install_interrupt_handler();
    for (size_t start = 0; start < images.size(); start += static_cast<size_t>(args.batch_size)) {
      if (g_interrupted) throw ToolError("interrupted");
      const size_t end = std::min(images.size(), start + static_cast<size_t>(args.batch_size));
      parts.push_back(model.embed_image(
          open_images({images.begin() + static_cast<std::ptrdiff_t>(start), images.begin() + static_cast<std::ptrdiff_t>(end)}),
          options));
      rows += parts.back().rows();
      progress.update(static_cast<int64_t>(end));
    }
    progress.finish();
    if (parts.empty()) parts.push_back(model.embed_image({}, options));  // [0, D]
    image_embeds.resize(rows, parts.front().cols());
    Eigen::Index row = 0;
    for (const auto& part : parts) {
      image_embeds.middleRows(row, part.rows()) = part;
      row += part.rows();
    }
  }
  const internvl::Matrix text_embeds = model.embed_text(args.texts, options);
  internvl::Matrix logits;
  if (have_images && have_texts) logits = model.logits_per_image(image_embeds, text_embeds);

  if (!args.save_embeddings.empty()) {
    std::vector<std::pair<std::string, const internvl::Matrix*>> tensors;
    if (have_images) tensors.emplace_back("image_embeds", &image_embeds);
    if (have_texts) tensors.emplace_back("text_embeds", &text_embeds);
    if (have_images && have_texts) tensors.emplace_back("logits_per_image", &logits);
    const json image_list = images;
    const json text_list = args.texts;
    write_safetensors(args.save_embeddings, tensors,
                      {{"format", "pt"},
                       {"model_id", model.model_id()},
                       {"mode", internvl::to_string(mode)},
                       {"logit_scale", fixed(model.logit_scale(), 6)},
                       {"images", image_list.dump(-1, ' ', false, json::error_handler_t::replace)},
                       {"texts", text_list.dump(-1, ' ', false, json::error_handler_t::replace)}});
    info("wrote " + args.save_embeddings);
  }

  const int k = args.top_k;
  if (args.json) {
    json out = {{"command", "embed"},
                {"model_id", model.model_id()},
                {"mode", internvl::to_string(mode)},
                {"logit_scale", model.logit_scale()},
                {"images", images},
                {"texts", args.texts}};
    if (have_images) out["image_embeds"] = matrix_json(image_embeds);
    if (have_texts) out["text_embeds"] = matrix_json(text_embeds);
    if (have_images && have_texts) {
      out["logits_per_image"] = matrix_json(logits);
      json rankings = json::array();
      for (Eigen::Index t = 0; t < logits.cols(); ++t) {
        json list = json::array();
        int rank = 1;
        for (const auto& [row, logit] : ranking(logits, t, k)) {
          list.push_back({{"rank", rank++}, {"image", images[static_cast<size_t>(row)]}, {"logit", logit}});
        }
        rankings.push_back({{"text", args.texts[static_cast<size_t>(t)]}, {"images", std::move(list)}});
      }
      out["rankings"] = std::move(rankings);
    }
    print_json(out);
  } else if (have_images && have_texts) {
    std::printf("logits_per_image (exp(logit_scale) = %.4f times cosine similarity), %s\n", model.logit_scale(),
                mode_name(mode));
    // The column fits the longest name: a path cut short could name another file.
    int width = 12;
    for (const auto& image : images) width = std::max(width, static_cast<int>(printable(image).size()));
    std::printf("%-*s", width, "image \\ text");
    for (size_t t = 0; t < args.texts.size(); ++t) std::printf(" %9s", ("T" + std::to_string(t + 1)).c_str());
    std::printf("\n");
    for (size_t i = 0; i < images.size(); ++i) {
      std::printf("%-*s", width, printable(images[i]).c_str());
      for (Eigen::Index t = 0; t < logits.cols(); ++t) std::printf(" %9.4f", logits(static_cast<Eigen::Index>(i), t));
      std::printf("\n");
    }
    std::printf("\nimages ranked per text:\n");
    for (Eigen::Index t = 0; t < logits.cols(); ++t) {
      std::printf("T%lld %s\n", static_cast<long long>(t + 1), quoted(args.texts[static_cast<size_t>(t)]).c_str());
      int rank = 1;
      for (const auto& [row, logit] : ranking(logits, t, k)) {
        std::printf("  %4d  %9.4f  %s\n", rank++, logit, printable(images[static_cast<size_t>(row)]).c_str());
      }
    }
  } else {
    const auto& embeds = have_images ? image_embeds : text_embeds;
    std::printf("%s_embeds [%lld, %lld] (%s, unnormalised)\n", have_images ? "image" : "text",
                static_cast<long long>(embeds.rows()), static_cast<long long>(embeds.cols()), mode_name(mode));
    for (Eigen::Index r = 0; r < embeds.rows(); ++r) {
      const auto& name = have_images ? images[static_cast<size_t>(r)] : args.texts[static_cast<size_t>(r)];
      std::printf("  norm %9.4f  %s\n", embeds.row(r).norm(), have_images ? printable(name).c_str() : quoted(name).c_str());
    }
  }

  if (!args.html.empty()) {
    std::string page;
    if (have_images && have_texts) {
      page = render_matrix(args.html, "internvl-retrieve embed", std::string(mode_name(mode)) + ", " + model.model_id(),
                           images, args.texts, logits);
    } else if (have_images) {
      GallerySection section;
      section.heading = std::to_string(images.size()) + " image(s)";
      for (size_t i = 0; i < images.size(); ++i) {
        section.items.push_back({images[i], "norm " + fixed(image_embeds.row(static_cast<Eigen::Index>(i)).norm(), 4), {}});
      }
      page = render_gallery(args.html, "internvl-retrieve embed", std::string(mode_name(mode)), {section});
    } else {
      page = render_matrix(args.html, "internvl-retrieve embed", "texts only", {}, args.texts, logits);
    }
    write_file_atomically(args.html, {page});
    info("wrote " + args.html);
  }
  return 0;
}

int dispatch(const Args& args) {
  switch (args.command) {
    case Command::kIndex: return run_index(args);
    case Command::kSearch: return run_search(args);
    case Command::kClassify: return run_classify(args);
    case Command::kEmbed: return run_embed(args);
    case Command::kNone: break;
  }
  return 2;
}

std::string first_line(const char* text) {
  std::string s(text);
  const auto newline = s.find('\n');
  return newline == std::string::npos ? s : s.substr(0, newline);
}

}  // namespace
}  // namespace retrieve

int main(int argc, char** argv) {
  using namespace retrieve;
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "internvl-retrieve: %s\n", e.what());
    std::fprintf(stderr, "run 'internvl-retrieve --help' for usage\n");
    return 2;
  }
  if (args.help) {
    std::fputs(usage(args.command).c_str(), stdout);
    return 0;
  }
  if (args.version) {
    std::printf("internvl-retrieve %s\n", INTERNVL_VERSION_STRING);
    return 0;
  }
  set_quiet(args.quiet);
  try {
    return dispatch(args);
  } catch (const internvl::Error& e) {
    std::fprintf(stderr, "error: %s\n", tool_common::in_user_terms(e.what()).c_str());
  } catch (const ToolError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const std::exception& e) {  // e.g. out of memory; LibTorch messages carry a backtrace
    std::fprintf(stderr, "error: %s\n", first_line(e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "error: unexpected exception\n");
  }
  return 1;
}

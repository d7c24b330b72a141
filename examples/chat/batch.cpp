#include "batch.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "atomic_file.h"

namespace chat_tool {
namespace {

using nlohmann::json;

// A line's problem, reported in its output line.
struct LineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const std::set<std::string> kFields = {"id",    "question", "images",             "max_new_tokens", "system",
                                       "max_tiles", "sample", "temperature", "top_k", "top_p",
                                       "repetition_penalty", "seed", "stop"};

double number(const json& line, const char* field) {
  const auto& v = line.at(field);
  if (!v.is_number()) throw LineError(std::string("'") + field + "' must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw LineError(std::string("'") + field + "' must be finite");
  return d;
}

long long integer(const json& line, const char* field, long long min, long long max) {
  const auto& v = line.at(field);
  if (!v.is_number_integer()) throw LineError(std::string("'") + field + "' must be an integer");
  const long long i = v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(max)
                          ? max + 1
                          : v.get<long long>();
  if (i < min || i > max) {
    throw LineError(std::string("'") + field + "' must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return i;
}

// The request of one input line; the CLI flags give the defaults, as they would for --prompt.
internvl::ChatRequest parse_line(const json& line, const Options& options) {
  if (!line.is_object()) throw LineError("a line must be a JSON object");
  for (auto it = line.begin(); it != line.end(); ++it) {
    if (!kFields.count(it.key())) throw LineError("unknown field '" + it.key() + "'");
  }
  internvl::ChatRequest request;
  if (!line.contains("question") || !line.at("question").is_string()) throw LineError("'question' (a string) is required");
  request.question = line.at("question").get<std::string>();
  if (line.contains("images")) {
    const auto& images = line.at("images");
    if (!images.is_array()) throw LineError("'images' must be an array of file names");
    for (const auto& image : images) {
      if (!image.is_string() || image.get<std::string>().empty()) throw LineError("'images' must hold file names");
      request.images.push_back(internvl::Image::from_file(image.get<std::string>()));
    }
  }
  request.max_tiles = options.max_tiles;
  if (line.contains("max_tiles")) request.max_tiles = static_cast<int>(integer(line, "max_tiles", 0, 1 << 16));
  request.system_message = options.system_message;
  if (line.contains("system")) {
    if (!line.at("system").is_string()) throw LineError("'system' must be a string");
    request.system_message = line.at("system").get<std::string>();
  }
  auto& g = request.generation;
  g = options.generation;
  if (line.contains("max_new_tokens")) g.max_new_tokens = static_cast<int>(integer(line, "max_new_tokens", 1, 1 << 30));
  // As the flags: a sampling field implies sampling, temperature 0 is greedy.
  bool sampling = false, greedy = false, seed_given = false;
  if (line.contains("sample")) {
    if (!line.at("sample").is_boolean()) throw LineError("'sample' must be true or false");
    (line.at("sample").get<bool>() ? sampling : greedy) = true;
  }
  if (line.contains("temperature")) {
    const double t = number(line, "temperature");
    if (t < 0) throw LineError("'temperature' must be >= 0 (0: greedy)");
    if (t == 0) {
      greedy = true;
    } else {
      g.temperature = t;
      sampling = true;
    }
  }
  if (line.contains("top_k")) {
    g.top_k = static_cast<int>(integer(line, "top_k", 0, 1 << 30));
    sampling = true;
  }
  if (line.contains("top_p")) {
    g.top_p = number(line, "top_p");
    if (!(g.top_p > 0 && g.top_p <= 1)) throw LineError("'top_p' must be in (0, 1]");
    sampling = true;
  }
  if (line.contains("repetition_penalty")) {
    g.repetition_penalty = number(line, "repetition_penalty");
    if (!(g.repetition_penalty > 0)) throw LineError("'repetition_penalty' must be > 0");
    sampling = true;
  }
  if (line.contains("seed")) {
    const auto& s = line.at("seed");
    if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<long long>() >= 0))
      throw LineError("'seed' must be a non-negative integer");
    g.seed = s.get<unsigned long long>();
    seed_given = true;
    sampling = true;
  }
  if (line.contains("stop")) {
    const auto& stop = line.at("stop");
    std::vector<std::string> stops;
    if (stop.is_string()) {
      stops.push_back(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const auto& s : stop) {
        if (!s.is_string()) throw LineError("'stop' must be a string or an array of strings");
        stops.push_back(s.get<std::string>());
      }
    } else {
      throw LineError("'stop' must be a string or an array of strings");
    }
    for (const auto& s : stops) {
      if (s.empty()) throw LineError("'stop' strings must not be empty");
    }
    g.stop_strings = stops;
  }
  if (sampling || greedy) g.do_sample = sampling && !greedy;
  // Without a seed, each sampled line gets the run's seed (itself random unless --seed) plus
  // its line number, so lines differ from one another.
  if (g.do_sample && !seed_given) g.seed = options.generation.seed;
  return request;
}

}  // namespace

int run_batch(const internvl::Model& model, const Options& options) {
  std::ifstream in(options.batch_input, std::ios::binary);
  if (!in) throw internvl::Error("cannot read the batch file " + options.batch_input);
  struct Pending {
    json id;
    std::optional<internvl::ChatHandle> handle;
    std::string error;
  };
  std::ostringstream out;
  std::deque<Pending> window;
  size_t lines = 0, errors = 0;
  int64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  auto write_one = [&](Pending& p) {
    json row = {{"id", p.id}};
    if (p.handle) {
      try {
        const auto result = p.handle->get();
        row["response"] = result.response;
        row["output_ids"] = result.output_ids;
        row["finish_reason"] = internvl::to_string(result.finish_reason);
        tokens += static_cast<int64_t>(result.output_ids.size());
      } catch (const std::exception& e) {
        p.error = e.what();
      }
    }
    if (!p.error.empty()) {
      row["error"] = p.error;
      ++errors;
    }
    out << row.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  };
  // Requests hold their prompt embeddings until they run: keep only a few batches queued.
  const size_t window_size = 2 * static_cast<size_t>(std::max(1, options.load.max_batch_size));
  std::string text;
  while (std::getline(in, text)) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are not requests
    ++lines;
    Pending p;
    try {
      const json line = json::parse(text);
      if (line.is_object() && line.contains("id")) p.id = line.at("id");
      auto request = parse_line(line, options);
      if (request.generation.do_sample && !line.contains("seed")) request.generation.seed += lines;
      p.handle = model.submit_chat(request);
    } catch (const json::parse_error& e) {
      p.error = "line " + std::to_string(lines) + ": not JSON (" + e.what() + ")";
    } catch (const std::exception& e) {
      p.error = "line " + std::to_string(lines) + ": " + e.what();
    }
    window.push_back(std::move(p));
    while (window.size() >= window_size) {
      write_one(window.front());
      window.pop_front();
    }
  }
  while (!window.empty()) {
    write_one(window.front());
    window.pop_front();
  }
  if (options.batch_output.empty() || options.batch_output == "-") {
    std::fwrite(out.str().data(), 1, out.str().size(), stdout);
    std::fflush(stdout);
  } else {
    write_file_atomically(options.batch_output, out.str(), "the batch output");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "internvl-chat: %zu request(s), %zu error(s), %lld tokens in %.2f s (%.2f tokens/s)\n", lines,
               errors, static_cast<long long>(tokens), seconds, seconds > 0 ? tokens / seconds : 0.0);
  return errors == 0 ? 0 : 1;
}

}  // namespace chat_tool

#include "fuzz/fuzz_entries.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "api_request.h"
#include "internvl/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "preprocess/image.h"
#include "preprocess/transforms.h"
#include "retrieval/embedding_index.h"
#include "stream_text.h"
#include "tokenizer/text_util.h"
#include "tokenizer/tokenizer.h"
#include "fuzz_config.h"

namespace internvl::fuzz {
namespace {

// One scratch directory per process (tmpfs when available: a file per input is written).
const std::string& scratch() {
  static const std::string dir = [] {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
    std::string tmpl = base + "/internvl_fuzz.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  return dir;
}

void write_file(const std::string& path, const uint8_t* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n <= 0) std::abort();
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// Reads every byte of every view: out-of-bounds views show up under ASan (or as SIGBUS).
template <typename Reader>
void touch_all(const Reader& reader) {
  unsigned checksum = 0;
  for (const auto& name : reader.names()) {
    const auto& view = reader.tensor(name);
    if (static_cast<std::size_t>(view.numel()) * io::dtype_size(view.dtype) != view.nbytes) std::abort();
    for (std::size_t i = 0; i < view.nbytes; ++i) checksum += static_cast<unsigned>(view.data[i]);
  }
  volatile unsigned sink = checksum;
  (void)sink;
}

// Runs fn; internvl::Error is the documented outcome of bad input.
template <typename Fn>
void expect_typed_errors(Fn&& fn) {
  try {
    fn();
  } catch (const internvl::Error&) {
  }
}

}  // namespace

void safetensors(const uint8_t* data, std::size_t size) {
  const std::string dir = scratch();
  ::unlink((dir + "/model.safetensors").c_str());
  ::unlink((dir + "/model.safetensors.index.json").c_str());
  ::unlink((dir + "/s1.safetensors").c_str());
  if (size == 0 || (data[0] & 1) == 0) {
    const uint8_t* body = size ? data + 1 : data;
    const std::size_t length = size ? size - 1 : 0;
    write_file(dir + "/model.safetensors", body, length);
    expect_typed_errors([&] { touch_all(io::SafetensorsFile(dir + "/model.safetensors")); });
    expect_typed_errors([&] { touch_all(io::Checkpoint(dir)); });
    return;
  }
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto cut = rest.find("\n--\n");
  const std::string_view index = rest.substr(0, cut);
  const std::string_view shard = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 4);
  write_file(dir + "/model.safetensors.index.json", reinterpret_cast<const uint8_t*>(index.data()), index.size());
  write_file(dir + "/s1.safetensors", reinterpret_cast<const uint8_t*>(shard.data()), shard.size());
  expect_typed_errors([&] { touch_all(io::Checkpoint(dir)); });
}

void config(const uint8_t* data, std::size_t size) {
  const std::string path = scratch() + "/config.json";
  write_file(path, data, size);
  expect_typed_errors([&] {
    const auto json = io::read_config_json(path);
    if (io::detect_family(json, path) == io::ModelFamily::kInternVL) {
      (void)io::parse_internvl_config(json, path);
    } else {
      const auto chat = io::parse_internvl_chat_config(json, path);
      if (chat.num_image_token() < 0) std::abort();
    }
  });
}

void image(const uint8_t* data, std::size_t size) {
  expect_typed_errors([&] {
    // A smaller pixel limit than the default keeps each execution fast; the guard is the same.
    const auto rgb = preprocess::decode_bytes(data, size, "fuzz", int64_t{1} << 18);
    if (static_cast<std::size_t>(rgb.width) * rgb.height * 3 != rgb.pixels.size()) std::abort();
    const auto resized = preprocess::retrieval_transform(rgb, 14);
    preprocess::TilingOptions tiling;
    tiling.tile_size = 14;
    tiling.max_tiles = 6;
    const auto tiles = preprocess::dynamic_tiles(rgb, tiling);
    (void)preprocess::normalize_imagenet(tiles.tiles);
    (void)preprocess::normalize_imagenet({resized});
  });
}


// Ids from the input's bytes after the first, two at a time: mostly valid, some just past the
// vocabulary and a few negative.
static std::vector<int64_t> fuzz_ids(const uint8_t* data, std::size_t size, int64_t vocab_size) {
  std::vector<int64_t> ids;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const int64_t raw = data[i] | (data[i + 1] << 8);
    ids.push_back(raw % (vocab_size + 8) - (raw > 65000 ? 70000 : 0));
  }
  return ids;
}

// The tokenizers of the named fixtures that have `file` (tokenizer.model or vocab.json).
static std::vector<std::unique_ptr<tokenizer::Tokenizer>> fixture_tokenizers(std::initializer_list<const char*> names,
                                                                      const char* file) {
  std::vector<std::unique_ptr<tokenizer::Tokenizer>> out;
  const char* env = std::getenv("INTERNVL_FIXTURES_DIR");
  const std::string root = env && *env ? env : INTERNVL_FUZZ_FIXTURES_DIR;
  for (const char* name : names) {
    const std::string dir = root + "/" + name;
    if (::access((dir + "/" + file).c_str(), R_OK) == 0) out.push_back(std::make_unique<tokenizer::Tokenizer>(dir));
  }
  if (out.empty()) std::abort();  // nothing to fuzz: the fixtures are missing
  return out;
}

void tokenizer(const uint8_t* data, std::size_t size) {
  // The fixtures' tokenizers: InternLM2 (chat), LLaMA (chat) and LLaMA legacy (retrieval).
  static const auto tokenizers = fixture_tokenizers(
      {"internvl-chat-internlm2-tiny", "internvl-chat-llama-tiny", "internvl-14b-tiny"}, "tokenizer.model");
  if (size == 0) return;
  const auto& tok = *tokenizers[data[0] % tokenizers.size()];
  const int op = (data[0] / 4) % 4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto ids = fuzz_ids(data, size, tok.vocab_size());
  tokenizer::DecodeOptions options;
  options.skip_special_tokens = (data[0] & 2) != 0;
  expect_typed_errors([&] {
    switch (op) {
      case 0: {
        const auto encoded = tok.encode(text);
        (void)tok.decode(encoded, options);
        break;
      }
      case 1: {
        const auto encoding = tok.encode_for_retrieval(text);
        if (encoding.input_ids.size() != 80 || encoding.length > 80) std::abort();
        break;
      }
      case 2: (void)tok.decode(ids, options); break;
      default: {
        // The streaming contract: pushes + flush equal one decode of the same ids.
        tokenizer::StreamDecoder stream(tok, options);
        std::string streamed;
        for (const auto id : ids) streamed += stream.push(id);
        streamed += stream.flush();
        if (streamed != tok.decode(ids, options)) std::abort();
      }
    }
  });
}

void tokenizer_bpe(const uint8_t* data, std::size_t size) {
  // The byte-level BPE (Qwen2Tokenizer) of the Qwen chat fixtures: small vocabularies, real rules.
  static const auto tokenizers =
      fixture_tokenizers({"internvl-chat-qwen2-tiny", "internvl-chat-qwen3-tiny"}, "vocab.json");
  if (size == 0) return;
  const auto& tok = *tokenizers[data[0] % tokenizers.size()];
  const int op = (data[0] / 2) % 4;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto ids = fuzz_ids(data, size, tok.vocab_size());
  tokenizer::DecodeOptions options;
  options.skip_special_tokens = (data[0] & 8) != 0;
  if (data[0] & 16) options.spaces_between_special_tokens = true;
  expect_typed_errors([&] {
    switch (op) {
      case 0: {
        // Round trip: decode(encode(text)) is the NFC of valid text (nothing is ever lost).
        const auto encoded = tok.encode(text);
        const auto tokens = tok.tokenize(text);
        if (tokens.size() != encoded.size()) std::abort();
        (void)tok.decode(encoded, options);
        break;
      }
      case 1: (void)tok.decode(ids, options); break;
      case 2: {
        // Hand-made byte sequences: decode splits nothing and streaming agrees.
        tokenizer::StreamDecoder stream(tok, options);
        std::string streamed;
        for (const auto id : ids) streamed += stream.push(id);
        streamed += stream.flush();
        if (streamed != tok.decode(ids, options)) std::abort();
        break;
      }
      default: {
        // Encode, then stream the ids back.
        const auto encoded = tok.encode(text);
        tokenizer::StreamDecoder stream(tok, options);
        std::string streamed;
        for (const auto id : encoded) streamed += stream.push(id);
        streamed += stream.flush();
        if (streamed != tok.decode(encoded, options)) std::abort();
      }
    }
  });
}

void index(const uint8_t* data, std::size_t size) {
  const std::string path = scratch() + "/index.safetensors";
  write_file(path, data, size);
  expect_typed_errors([&] {
    const auto loaded = retrieval::EmbeddingIndex::load(path);
    if (loaded.info().dim > 0 && loaded.info().dim <= 4096 && loaded.size() > 0) {
      const auto hits = loaded.search(at::ones({1, loaded.info().dim}), 3);
      for (const auto& hit : hits.at(0)) {
        if (hit.row < 0 || hit.row >= loaded.size()) std::abort();
      }
    }
  });
}

namespace {

// An ApiError must serialise as the server sends it (strict dump: valid UTF-8 throughout).
void check_error_body(const server::ApiError& e) {
  if (e.status < 400 || e.status > 599 || e.type.empty()) std::abort();
  (void)server::error_body(e).dump();
}

// Runs fn; an ApiError (checked) or another internvl::Error is the answer to a bad request.
template <typename Fn>
void expect_api_errors(Fn&& fn) {
  try {
    fn();
  } catch (const server::ApiError& e) {
    check_error_body(e);
  } catch (const internvl::Error&) {
  }
}

void decode_image(const server::ImageRef& image) {
  if (image.url.empty() || image.param.empty()) std::abort();
  if (image.url.rfind("data:", 0) != 0) return;  // files and http(s) are the server's to fetch
  expect_api_errors([&] {
    const auto bytes = server::decode_data_url(image.url, image.param);
    if (bytes.empty()) std::abort();
    if (server::decode_base64(server::encode_base64(bytes.data(), bytes.size()), "p") != bytes) std::abort();
  });
}

size_t count_placeholders(const std::string& text) {
  size_t n = 0;
  for (auto pos = text.find("<image>"); pos != std::string::npos; pos = text.find("<image>", pos + 7)) ++n;
  return n;
}

// Streams `text` as generated pieces (lengths taken from `seed`), as Model::chat feeds the server:
// the piece that completes a stop string ends generation unsent. The stream must equal the unary
// answer, the stripped text cut at the stop strings.
void stream_as_generated(const std::string& text, const std::vector<std::string>& stops, uint8_t seed) {
  server::StreamText filter(stops);
  std::string generated;
  std::string streamed;
  uint32_t state = seed * 2654435761u + 1;
  for (size_t pos = 0; pos < text.size();) {
    state = state * 1103515245u + 12345u;
    const size_t n = std::min(text.size() - pos, size_t{(state >> 16) % 9});
    const std::string piece = text.substr(pos, n);
    pos += n;
    generated += piece;
    bool stopped = false;
    for (const auto& stop : stops) stopped = stopped || generated.find(stop) != std::string::npos;
    if (stopped) break;
    streamed += filter.push(piece);
    if (filter.sent() != streamed) std::abort();
  }
  std::string response(tokenizer::python_strip(generated));
  for (const auto& stop : stops) {
    const auto cut = response.find(stop);
    if (cut != std::string::npos) response.resize(cut);
  }
  if (response.compare(0, streamed.size(), streamed) != 0) std::abort();  // sent more than the answer
  streamed += filter.finish(response);
  if (streamed != response) std::abort();
}

void check_chat(const server::ChatCompletionRequest& r, const server::RequestLimits& limits, uint8_t seed) {
  const auto& g = r.chat.generation;
  if (r.chat.question.empty() || g.max_new_tokens < 1 || (g.do_sample && !(g.temperature > 0)) ||
      !(g.top_p > 0 && g.top_p <= 1) || static_cast<int>(g.stop_strings.size()) > limits.max_stop_strings ||
      static_cast<int>(r.images.size()) > limits.max_images) {
    std::abort();
  }
  // One "<image>" per image in the user turns.
  size_t placeholders = count_placeholders(r.chat.question);
  for (const auto& turn : r.chat.history) placeholders += count_placeholders(turn.question);
  if (placeholders != r.images.size()) std::abort();
  for (const auto& stop : g.stop_strings) {
    if (stop.empty()) std::abort();
  }
  for (const auto& image : r.images) decode_image(image);
  stream_as_generated(r.chat.question, g.stop_strings, seed);
}

void check_input(const server::EmbeddingInput& input) {
  if (input.text.has_value() == input.image.has_value()) std::abort();
  if (input.text && input.text->empty()) std::abort();
  if (input.image) decode_image(*input.image);
}

}  // namespace

void server_request(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  // Small limits half of the time, so that short inputs reach every limit check.
  server::RequestLimits limits;
  if (data[0] & 4) {
    limits.max_images = 3;
    limits.max_inputs = 4;
    limits.max_stop_strings = 2;
    limits.max_search_k = 20;
  }
  expect_api_errors([&] {
    const auto body = server::parse_body(text);
    switch (data[0] % 3) {
      case 0: check_chat(server::parse_chat_request(body, limits), limits, data[0]); break;
      case 1: {
        const auto request = server::parse_embedding_request(body, limits);
        if (request.inputs.empty() || static_cast<int>(request.inputs.size()) > limits.max_inputs) std::abort();
        for (const auto& input : request.inputs) check_input(input);
        break;
      }
      default: {
        const auto request = server::parse_search_request(body, limits);
        if (request.k < 1 || request.k > limits.max_search_k) std::abort();
        check_input(request.query);
      }
    }
  });
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"safetensors", &safetensors},
                                          {"config", &config},
                                          {"image", &image},
                                          {"tokenizer", &tokenizer},
                                          {"tokenizer_bpe", &tokenizer_bpe},
                                          {"index", &index},
                                          {"server_request", &server_request}};
  return all;
}

}  // namespace internvl::fuzz

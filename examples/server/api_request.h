// OpenAI-style request bodies → library requests. Pure functions of the JSON (no I/O, no model),
// so the fuzz target and the unit tests drive exactly what the server runs. Every refusal is an
// ApiError naming the offending field the way the OpenAI API does ("messages[1].content[0].type").
#pragma once

#include <internvl/internvl.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace internvl::server {

// An error answered as {"error":{"message","type","param","code"}} with an HTTP status.
class ApiError : public Error {
 public:
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : Error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", "server_error", ...
  std::string param;  // the offending field, empty when none
  std::string code;   // machine-readable reason, empty when none
};

// 400 invalid_request_error naming `param`.
ApiError invalid_request(const std::string& param, const std::string& message, const std::string& code = {});

nlohmann::json error_body(const ApiError& error);

// Limits a request must respect; the server's command line sets them.
struct RequestLimits {
  int max_images = 16;          // images in one chat request (all turns)
  int max_inputs = 2048;        // inputs of one embeddings request (the OpenAI limit)
  int max_stop_strings = 16;
  int max_stop_length = 1024;   // bytes of one stop string
  int max_search_k = 1000;
  // Completion budget of a request that names none, lowered to what the context leaves.
  int default_max_tokens = 2048;
};

// An image as the request named it; the server resolves it (data: URL, local file, http(s)).
struct ImageRef {
  std::string url;
  std::string param;  // where it was, e.g. "messages[0].content[1].image_url"
};

struct ChatCompletionRequest {
  std::string model;  // empty: the served model
  ChatRequest chat;   // images left empty: see `images`
  std::vector<ImageRef> images;  // one per "<image>" placeholder of the prompt, in order
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // extra (as vLLM): prompt_token_ids / token_ids in the answer
  bool seed_given = false;        // sampling without a seed draws one
};

// The `messages` list becomes the official chat() arguments: system messages → the system
// message, earlier user/assistant pairs → history, the last user message → the question. A user
// message's images become "<image>" placeholders as the official multi-image prompt writes them
// ("<image>\n" for one, "Image-1: <image>\nImage-2: <image>\n" for several) unless its text has
// exactly one "<image>" per image already.
ChatCompletionRequest parse_chat_request(const nlohmann::json& body, const RequestLimits& limits = {});

// One input of an embeddings request: a text or an image.
struct EmbeddingInput {
  std::optional<std::string> text;
  std::optional<ImageRef> image;
};

struct EmbeddingRequest {
  std::string model;
  std::vector<EmbeddingInput> inputs;
  bool base64 = false;                // encoding_format
  std::optional<EmbedMode> mode;      // extra `mode`; else from the model name
  bool normalize = true;              // extra `normalize` (OpenAI embeddings are unit length)
  std::optional<int> dimensions;
};

EmbeddingRequest parse_embedding_request(const nlohmann::json& body, const RequestLimits& limits = {});

struct SearchRequest {
  std::string model;
  EmbeddingInput query;
  int k = 10;
};

SearchRequest parse_search_request(const nlohmann::json& body, const RequestLimits& limits = {});

// Parses text as a JSON object; invalid JSON or another type → 400 naming the body.
nlohmann::json parse_body(const std::string& text);

// "data:[<media type>][;base64],<payload>" → the decoded bytes; only base64 payloads.
std::vector<uint8_t> decode_data_url(const std::string& url, const std::string& param);
std::vector<uint8_t> decode_base64(const std::string& text, const std::string& param);
std::string encode_base64(const uint8_t* data, std::size_t size);

}  // namespace internvl::server

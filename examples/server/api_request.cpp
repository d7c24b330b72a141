#include "api_request.h"

#include <array>
#include <cmath>
#include <limits>

namespace internvl::server {

using nlohmann::json;

ApiError invalid_request(const std::string& param, const std::string& message, const std::string& code) {
  return ApiError(400, "invalid_request_error", message, param, code);
}

json error_body(const ApiError& error) {
  json e = {{"message", error.what()}, {"type", error.type}};
  e["param"] = error.param.empty() ? json(nullptr) : json(error.param);
  e["code"] = error.code.empty() ? json(nullptr) : json(error.code);
  return {{"error", e}};
}

namespace {

// nlohmann's parse error quotes the bytes it stopped at, which may be invalid UTF-8: replace
// those (U+FFFD) so that the error body serialises.
std::string valid_utf8(const std::string& text) {
  return json::parse(json(text).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

}  // namespace

json parse_body(const std::string& text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {
    throw invalid_request("body", "the request body is not valid JSON: " + valid_utf8(e.what()), "invalid_json");
  }
  if (!body.is_object()) throw invalid_request("body", "the request body must be a JSON object", "invalid_json");
  return body;
}

namespace {

const char* type_name(const json& value) { return value.type_name(); }

// A field that is absent or null counts as not given (many clients send nulls for defaults).
const json* field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& value) {
  throw invalid_request(param, param + " must be " + expected + ", got " + type_name(value), "invalid_type");
}

std::string get_string(const json& value, const std::string& param) {
  if (!value.is_string()) wrong_type(param, "a string", value);
  return value.get<std::string>();
}

bool get_bool(const json& value, const std::string& param) {
  if (!value.is_boolean()) wrong_type(param, "a boolean", value);
  return value.get<bool>();
}

double get_number(const json& value, const std::string& param) {
  if (!value.is_number()) wrong_type(param, "a number", value);
  const double x = value.get<double>();
  if (!std::isfinite(x)) throw invalid_request(param, param + " must be finite", "invalid_value");
  return x;
}

int64_t get_integer(const json& value, const std::string& param) {
  // Unsigned first: nlohmann stores every non-negative integer unsigned (is_number_integer is
  // true for those too), and 2^63 and above would wrap to negative numbers.
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw invalid_request(param, param + " is out of range", "invalid_value");
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  // 3.0 is an integer to JSON's number model (Python clients send floats for ints sometimes).
  if (value.is_number_float()) {
    const double x = value.get<double>();
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9.0e15) return static_cast<int64_t>(x);
  }
  wrong_type(param, "an integer", value);
}

int get_int_in(const json& value, const std::string& param, int64_t lo, int64_t hi) {
  const auto x = get_integer(value, param);
  if (x < lo || x > hi) {
    throw invalid_request(param, param + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                     std::to_string(x),
                          "invalid_value");
  }
  return static_cast<int>(x);
}

std::string optional_model(const json& body) {
  const auto* model = field(body, "model");
  return model ? get_string(*model, "model") : std::string();
}

// image_url as {"url": "..."} (the OpenAI shape) or a bare string (some clients).
ImageRef image_ref(const json& part, const std::string& param) {
  const auto* image_url = field(part, "image_url");
  if (!image_url) throw invalid_request(param + ".image_url", param + ".image_url is required", "missing_field");
  if (image_url->is_string()) {
    if (image_url->get_ref<const std::string&>().empty()) {
      throw invalid_request(param + ".image_url", param + ".image_url is empty", "invalid_value");
    }
    return {image_url->get<std::string>(), param + ".image_url"};
  }
  if (!image_url->is_object()) wrong_type(param + ".image_url", "an object with a url", *image_url);
  const auto* url = field(*image_url, "url");
  if (!url) throw invalid_request(param + ".image_url.url", param + ".image_url.url is required", "missing_field");
  auto text = get_string(*url, param + ".image_url.url");
  if (text.empty()) throw invalid_request(param + ".image_url.url", param + ".image_url.url is empty", "invalid_value");
  return {std::move(text), param + ".image_url"};
}

size_t count_placeholders(const std::string& text) {
  static const std::string placeholder = "<image>";
  size_t n = 0;
  for (auto pos = text.find(placeholder); pos != std::string::npos; pos = text.find(placeholder, pos + placeholder.size())) {
    ++n;
  }
  return n;
}

struct Message {
  std::string role;
  std::string text;
  std::vector<ImageRef> images;
  std::string param;
  bool resolved = false;  // text already holds one "<image>" per image
};

Message parse_message(const json& value, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "]";
  if (!value.is_object()) wrong_type(param, "an object", value);
  Message message;
  message.param = param;
  const auto* role = field(value, "role");
  if (!role) throw invalid_request(param + ".role", param + ".role is required", "missing_field");
  message.role = get_string(*role, param + ".role");
  if (message.role == "developer") message.role = "system";  // the newer name for system
  if (message.role != "system" && message.role != "user" && message.role != "assistant") {
    throw invalid_request(param + ".role",
                          param + ".role must be system, developer, user or assistant, got '" + message.role + "'",
                          "invalid_value");
  }
  const auto* content = field(value, "content");
  if (!content) throw invalid_request(param + ".content", param + ".content is required", "missing_field");
  if (content->is_string()) {
    message.text = content->get<std::string>();
    return message;
  }
  if (!content->is_array()) wrong_type(param + ".content", "a string or an array of parts", *content);
  std::vector<std::string> texts;
  for (size_t j = 0; j < content->size(); ++j) {
    const auto& part = (*content)[j];
    const std::string part_param = param + ".content[" + std::to_string(j) + "]";
    if (!part.is_object()) wrong_type(part_param, "an object", part);
    const auto* type = field(part, "type");
    if (!type) throw invalid_request(part_param + ".type", part_param + ".type is required", "missing_field");
    const auto type_text = get_string(*type, part_param + ".type");
    if (type_text == "text") {
      const auto* text = field(part, "text");
      if (!text) throw invalid_request(part_param + ".text", part_param + ".text is required", "missing_field");
      texts.push_back(get_string(*text, part_param + ".text"));
    } else if (type_text == "image_url") {
      if (message.role != "user") {
        throw invalid_request(part_param, "images are accepted in user messages only", "invalid_value");
      }
      message.images.push_back(image_ref(part, part_param));
    } else {
      throw invalid_request(part_param + ".type",
                            part_param + ".type must be text or image_url, got '" + type_text + "'", "invalid_value");
    }
  }
  for (size_t i = 0; i < texts.size(); ++i) message.text += (i ? "\n" : "") + texts[i];
  return message;
}

// A user message as the official prompt writes it: its images as "<image>" placeholders.
std::string question_text(const Message& message) {
  const size_t placeholders = count_placeholders(message.text);
  const size_t images = message.images.size();
  if (placeholders == images) return message.text;
  if (placeholders != 0) {
    throw invalid_request(message.param + ".content",
                          message.param + " has " + std::to_string(images) + " image(s) but " +
                              std::to_string(placeholders) + " \"<image>\" placeholder(s) in its text",
                          "invalid_value");
  }
  if (images == 1) return "<image>\n" + message.text;
  std::string prefix;
  for (size_t i = 0; i < images; ++i) prefix += "Image-" + std::to_string(i + 1) + ": <image>\n";
  return prefix + message.text;
}

void parse_generation(const json& body, ChatCompletionRequest& out, const RequestLimits& limits) {
  auto& g = out.chat.generation;
  g.max_new_tokens = limits.default_max_tokens;
  g.fit_context = true;
  if (const auto* v = field(body, "max_tokens")) {
    g.max_new_tokens = get_int_in(*v, "max_tokens", 1, 1 << 30);
    g.fit_context = false;
  }
  if (const auto* v = field(body, "max_completion_tokens")) {
    g.max_new_tokens = get_int_in(*v, "max_completion_tokens", 1, 1 << 30);
    g.fit_context = false;
  }
  // The official chat() default is greedy; temperature 0 is greedy as well.
  if (const auto* v = field(body, "temperature")) {
    const double t = get_number(*v, "temperature");
    if (t < 0 || t > 2) throw invalid_request("temperature", "temperature must be in [0, 2]", "invalid_value");
    g.do_sample = t > 0;
    if (t > 0) g.temperature = t;
  }
  if (const auto* v = field(body, "top_p")) {
    const double p = get_number(*v, "top_p");
    if (!(p > 0 && p <= 1)) throw invalid_request("top_p", "top_p must be in (0, 1]", "invalid_value");
    g.top_p = p;
  }
  if (const auto* v = field(body, "top_k")) g.top_k = get_int_in(*v, "top_k", 0, 1 << 30);
  if (const auto* v = field(body, "repetition_penalty")) {
    const double r = get_number(*v, "repetition_penalty");
    if (!(r > 0)) throw invalid_request("repetition_penalty", "repetition_penalty must be positive", "invalid_value");
    g.repetition_penalty = r;
  }
  if (const auto* v = field(body, "seed")) {
    // Any 64-bit seed (some clients draw them unsigned); a negative one wraps.
    g.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(get_integer(*v, "seed"));
    out.seed_given = true;
  }
  if (const auto* v = field(body, "stop")) {
    // An empty stop string would end every answer at once; name the list item that holds it.
    auto add_stop = [&](const json& item, const std::string& param) {
      auto text = get_string(item, param);
      if (text.empty()) throw invalid_request(param, param + " must not be empty", "invalid_value");
      // Held-back stream text is matched against every stop prefix: keep that bounded.
      if (static_cast<int>(text.size()) > limits.max_stop_length) {
        throw invalid_request(param, param + " is longer than " + std::to_string(limits.max_stop_length) + " bytes",
                              "invalid_value");
      }
      g.stop_strings.push_back(std::move(text));
    };
    if (v->is_string()) {
      add_stop(*v, "stop");
    } else if (v->is_array()) {
      if (static_cast<int>(v->size()) > limits.max_stop_strings) {
        throw invalid_request("stop", "stop takes at most " + std::to_string(limits.max_stop_strings) + " strings",
                              "invalid_value");
      }
      for (size_t i = 0; i < v->size(); ++i) add_stop((*v)[i], "stop[" + std::to_string(i) + "]");
    } else {
      wrong_type("stop", "a string or an array of strings", *v);
    }
  }
  if (const auto* v = field(body, "max_tiles")) out.chat.max_tiles = get_int_in(*v, "max_tiles", 1, 64);
  if (const auto* v = field(body, "n")) {
    if (get_integer(*v, "n") != 1) throw invalid_request("n", "only n = 1 is supported", "unsupported_value");
  }
  if (const auto* v = field(body, "logprobs")) {
    if (get_bool(*v, "logprobs")) throw invalid_request("logprobs", "logprobs are not supported", "unsupported_value");
  }
  if (const auto* v = field(body, "tools")) {
    if (!v->is_array()) wrong_type("tools", "an array", *v);
    if (!v->empty()) throw invalid_request("tools", "tool calling is not supported", "unsupported_value");
  }
}

EmbeddingInput embedding_input(const json& item, const std::string& param) {
  EmbeddingInput input;
  if (item.is_string()) {
    input.text = item.get<std::string>();
    if (input.text->empty()) throw invalid_request(param, param + " must not be empty", "invalid_value");
    return input;
  }
  if (item.is_object()) {
    const auto* type = field(item, "type");
    if (!type) throw invalid_request(param + ".type", param + ".type is required", "missing_field");
    const auto type_text = get_string(*type, param + ".type");
    if (type_text == "image_url") {
      input.image = image_ref(item, param);
      return input;
    }
    if (type_text == "text") {
      const auto* text = field(item, "text");
      if (!text) throw invalid_request(param + ".text", param + ".text is required", "missing_field");
      input.text = get_string(*text, param + ".text");
      if (input.text->empty()) throw invalid_request(param + ".text", param + ".text must not be empty", "invalid_value");
      return input;
    }
    throw invalid_request(param + ".type", param + ".type must be text or image_url, got '" + type_text + "'",
                          "invalid_value");
  }
  if (item.is_number_integer() || item.is_array()) {
    throw invalid_request(param, "token-id inputs are not supported; send text", "unsupported_value");
  }
  wrong_type(param, "a string or an image_url object", item);
}

}  // namespace

ChatCompletionRequest parse_chat_request(const json& body, const RequestLimits& limits) {
  if (!body.is_object()) throw invalid_request("body", "the request body must be a JSON object", "invalid_json");
  ChatCompletionRequest out;
  out.model = optional_model(body);
  const auto* messages = field(body, "messages");
  if (!messages) throw invalid_request("messages", "messages is required", "missing_field");
  if (!messages->is_array()) wrong_type("messages", "an array", *messages);
  if (messages->empty()) throw invalid_request("messages", "messages must not be empty", "invalid_value");

  std::vector<std::string> system_texts;
  std::vector<Message> turns;  // user/assistant, consecutive same-role messages merged
  for (size_t i = 0; i < messages->size(); ++i) {
    auto message = parse_message((*messages)[i], i);
    // A message that places its own images is resolved now, so merging keeps its placement.
    if (message.role == "user" && count_placeholders(message.text) > 0) {
      message.text = question_text(message);
      message.resolved = true;
    }
    if (message.role == "system") {
      system_texts.push_back(std::move(message.text));
      continue;
    }
    if (turns.empty() && message.role == "assistant") {
      throw invalid_request(message.param + ".role", "the conversation must start with a user message", "invalid_value");
    }
    if (!turns.empty() && turns.back().role == message.role) {
      auto& last = turns.back();
      // Merge as one turn, texts joined. Images of unplaced messages are pooled into one
      // "Image-1: ... Image-N:" prefix; once one message placed its own, each keeps its own.
      if (last.resolved != message.resolved) {
        if (!last.resolved) last.text = question_text(last);
        if (!message.resolved) message.text = question_text(message);
        last.resolved = message.resolved = true;
      }
      if (!message.text.empty()) last.text += (last.text.empty() ? "" : "\n") + message.text;
      for (auto& image : message.images) last.images.push_back(std::move(image));
      continue;
    }
    turns.push_back(std::move(message));
  }
  if (turns.empty()) throw invalid_request("messages", "messages has no user message", "invalid_value");
  if (turns.back().role != "user") {
    throw invalid_request("messages", "the last message must be from the user", "invalid_value");
  }
  for (size_t i = 0; i < system_texts.size(); ++i) out.chat.system_message += (i ? "\n" : "") + system_texts[i];

  size_t total_images = 0;
  for (const auto& turn : turns) total_images += turn.images.size();
  if (total_images > static_cast<size_t>(limits.max_images)) {
    throw invalid_request("messages",
                          "the conversation has " + std::to_string(total_images) + " images; at most " +
                              std::to_string(limits.max_images) + " are accepted",
                          "too_many_images");
  }
  for (size_t i = 0; i + 1 < turns.size(); i += 2) {
    out.chat.history.push_back({turns[i].resolved ? turns[i].text : question_text(turns[i]), turns[i + 1].text});
  }
  out.chat.question = turns.back().resolved ? turns.back().text : question_text(turns.back());
  if (out.chat.question.empty()) {
    throw invalid_request(turns.back().param + ".content", "the last user message is empty", "invalid_value");
  }
  for (auto& turn : turns) {
    for (auto& image : turn.images) out.images.push_back(std::move(image));
  }

  parse_generation(body, out, limits);
  if (const auto* v = field(body, "stream")) out.stream = get_bool(*v, "stream");
  if (const auto* v = field(body, "stream_options")) {
    if (!v->is_object()) wrong_type("stream_options", "an object", *v);
    if (const auto* u = field(*v, "include_usage")) out.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  if (const auto* v = field(body, "return_token_ids")) out.return_token_ids = get_bool(*v, "return_token_ids");
  return out;
}

EmbeddingRequest parse_embedding_request(const json& body, const RequestLimits& limits) {
  if (!body.is_object()) throw invalid_request("body", "the request body must be a JSON object", "invalid_json");
  EmbeddingRequest out;
  out.model = optional_model(body);
  const auto* input = field(body, "input");
  if (!input) throw invalid_request("input", "input is required", "missing_field");
  if (input->is_array()) {
    if (input->empty()) throw invalid_request("input", "input must not be empty", "invalid_value");
    if (static_cast<int64_t>(input->size()) > limits.max_inputs) {
      throw invalid_request("input", "input takes at most " + std::to_string(limits.max_inputs) + " items",
                            "invalid_value");
    }
    for (size_t i = 0; i < input->size(); ++i) {
      out.inputs.push_back(embedding_input((*input)[i], "input[" + std::to_string(i) + "]"));
    }
  } else {
    out.inputs.push_back(embedding_input(*input, "input"));
  }
  if (const auto* v = field(body, "encoding_format")) {
    const auto format = get_string(*v, "encoding_format");
    if (format != "float" && format != "base64") {
      throw invalid_request("encoding_format", "encoding_format must be float or base64, got '" + format + "'",
                            "invalid_value");
    }
    out.base64 = format == "base64";
  }
  if (const auto* v = field(body, "mode")) {
    const auto mode = get_string(*v, "mode");
    try {
      out.mode = parse_embed_mode(mode);
    } catch (const InvalidArgument&) {
      throw invalid_request("mode", "mode must be c or g, got '" + mode + "'", "invalid_value");
    }
  }
  if (const auto* v = field(body, "normalize")) out.normalize = get_bool(*v, "normalize");
  if (const auto* v = field(body, "dimensions")) out.dimensions = get_int_in(*v, "dimensions", 1, 1 << 20);
  return out;
}

SearchRequest parse_search_request(const json& body, const RequestLimits& limits) {
  if (!body.is_object()) throw invalid_request("body", "the request body must be a JSON object", "invalid_json");
  SearchRequest out;
  out.model = optional_model(body);
  const auto* query = field(body, "query");
  if (!query) throw invalid_request("query", "query is required", "missing_field");
  out.query = embedding_input(*query, "query");
  if (const auto* v = field(body, "k")) out.k = get_int_in(*v, "k", 1, limits.max_search_k);
  return out;
}

// ---- base64 / data URLs -------------------------------------------------------------------------

std::vector<uint8_t> decode_base64(const std::string& text, const std::string& param) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
    // URL-safe alphabet too (some clients encode that way).
    t[static_cast<uint8_t>('-')] = 62;
    t[static_cast<uint8_t>('_')] = 63;
    return t;
  }();
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (const char c : text) {
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int8_t v = table[static_cast<uint8_t>(c)];
    if (v < 0 || padding > 0) {
      throw invalid_request(param, param + " is not valid base64", "invalid_image");
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((buffer >> bits) & 0xFF));
    }
  }
  // 6 leftover bits can never come from whole bytes.
  if (bits >= 6 || padding > 2) throw invalid_request(param, param + " is not valid base64", "invalid_image");
  return out;
}

std::string encode_base64(const uint8_t* data, std::size_t size) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < size; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < size) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (i + 1 < size) v |= uint32_t{data[i + 1]} << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::vector<uint8_t> decode_data_url(const std::string& url, const std::string& param) {
  if (url.rfind("data:", 0) != 0) throw invalid_request(param, param + " is not a data: URL", "invalid_image");
  const auto comma = url.find(',');
  if (comma == std::string::npos) throw invalid_request(param, param + " is a data: URL without ','", "invalid_image");
  const std::string header = url.substr(5, comma - 5);
  const bool is_base64 = header.size() >= 7 && header.compare(header.size() - 7, 7, ";base64") == 0;
  if (!is_base64) {
    throw invalid_request(param, param + ": only base64 data: URLs are accepted (data:image/png;base64,...)",
                          "invalid_image");
  }
  auto bytes = decode_base64(url.substr(comma + 1), param);
  if (bytes.empty()) throw invalid_request(param, param + " holds no data", "invalid_image");
  return bytes;
}

}  // namespace internvl::server

#include "generation/chat.h"

#include <ATen/ATen.h>

#include <numeric>

#include "common/check.h"
#include "generation/stop_strings.h"
#include "tokenizer/chat_template.h"

namespace internvl::generation {

struct ChatJob {
  ChatResult result;  // prompt, input_ids, tiles_per_image known at submit
  const tokenizer::ConversationTemplate* conversation = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  tokenizer::DecodeOptions decode_options;
  std::vector<std::string> stop_strings;
  TextCallback on_text;
  std::unique_ptr<tokenizer::StreamDecoder> stream;  // only when text is streamed or stop strings are set
  std::unique_ptr<StopStringMatcher> matcher;
  bool stopped_by_string = false;
  bool stopped_by_callback = false;
  std::shared_ptr<SequenceTicket> ticket;

  // Engine thread, after each token (not the stop token).
  bool on_token(int64_t token) {
    if (!stream) return true;
    const auto piece = matcher->push(stream->push(token));
    if (!piece.text.empty() && on_text && !on_text(piece.text)) {
      stopped_by_callback = true;
      return false;
    }
    if (piece.stopped) stopped_by_string = true;
    return !piece.stopped;
  }
  // Engine thread, at the end: the text the stream decoder and the matcher still hold.
  void on_finish(const GenerateResult& generated) {
    if (!stream || stopped_by_string || stopped_by_callback || generated.reason == StopReason::kCancelled) return;
    auto piece = matcher->push(stream->flush());
    if (piece.stopped) {
      stopped_by_string = true;
    } else {
      piece.text += matcher->finish();
    }
    if (on_text && !piece.text.empty()) on_text(piece.text);
  }
};

struct ChatPipeline::Prepared {
  std::shared_ptr<ChatJob> job;
  std::vector<at::Tensor> pixels;  // per image [tiles, 3, S, S]
  GenerateOptions options;
  int64_t context_id = 0;
};

ChatPipeline::ChatPipeline(ChatBackend backend, EngineOptions options)
    : backend_(std::move(backend)), engine_(*backend_.model->language_model, options) {}

ChatPipeline::Prepared ChatPipeline::prepare(const ChatRequest& request) const {
  const auto& tok = *backend_.tokenizer;
  const auto& config = *backend_.config;
  const auto& lm = *backend_.model->language_model;
  const auto& conversation = tokenizer::get_conversation_template(config.template_name);
  const auto& g = request.generation;
  Prepared prepared;
  auto& options = prepared.options;
  options.max_new_tokens = g.max_new_tokens;
  options.sampling = {g.do_sample, g.temperature, g.top_k, g.top_p, g.repetition_penalty, g.seed};
  validate(options.sampling);
  INTERNVL_CHECK(g.max_new_tokens > 0, InvalidArgument, "generation.max_new_tokens must be positive, got ",
                 g.max_new_tokens);
  for (const auto& stop : g.stop_strings) {
    INTERNVL_CHECK(!stop.empty(), InvalidArgument, "generation.stop_strings must not contain empty strings");
  }
  auto job = std::make_shared<ChatJob>();
  auto& result = job->result;
  for (const auto& image : request.images) {
    prepared.pixels.push_back(backend_.preprocess(image, request.max_tiles));
    result.tiles_per_image.push_back(static_cast<int>(prepared.pixels.back().size(0)));
  }
  tokenizer::ChatPromptRequest prompt_request;
  prompt_request.question = request.question;
  const std::string placeholder = "<image>";
  if (!request.history.empty()) {
    prompt_request.history = std::vector<tokenizer::ChatTurn>();
    for (const auto& turn : request.history) prompt_request.history->push_back({turn.question, turn.answer});
  } else if (request.images.size() > 1 && request.question.find(placeholder) == std::string::npos) {
    // The official README's multi-image prompt: "Image-1: <image>\nImage-2: <image>\n..." (chat()
    // itself prepends a single "<image>\n", for a single image).
    std::string prefix;
    for (size_t i = 0; i < request.images.size(); ++i) prefix += "Image-" + std::to_string(i + 1) + ": " + placeholder + "\n";
    prompt_request.question = prefix + request.question;
  }
  for (const auto n : result.tiles_per_image) prompt_request.num_patches_list.push_back(n);
  const std::string system_message = !request.system_message.empty() ? request.system_message
                                     : !config.system_message.empty() ? config.system_message
                                                                      : conversation.system_message;
  result.prompt = tokenizer::build_chat_prompt(conversation, system_message, prompt_request, config.num_image_token());

  int64_t placeholders_left = 0;
  for (auto pos = result.prompt.find(placeholder); pos != std::string::npos;
       pos = result.prompt.find(placeholder, pos + placeholder.size())) {
    ++placeholders_left;
  }
  const auto context_id = tok.find_token("<IMG_CONTEXT>");
  INTERNVL_CHECK(context_id.has_value(), ConfigError, backend_.path, ": the tokenizer has no <IMG_CONTEXT> token");
  prepared.context_id = *context_id;
  result.input_ids = tok.encode(result.prompt);
  if (g.fit_context) {
    const int64_t room = lm.context_length() - static_cast<int64_t>(result.input_ids.size());
    INTERNVL_CHECK(room > 0, InvalidArgument, "the prompt (", result.input_ids.size(),
                   " tokens) fills the model's context of ", lm.context_length(), " tokens");
    options.max_new_tokens = static_cast<int>(std::min<int64_t>(options.max_new_tokens, room));
  }
  const int64_t context_tokens = std::count(result.input_ids.begin(), result.input_ids.end(), *context_id);
  INTERNVL_CHECK((request.images.empty() || placeholders_left == 0) &&
                     context_tokens == config.num_image_token() * std::accumulate(result.tiles_per_image.begin(),
                                                                                  result.tiles_per_image.end(),
                                                                                  int64_t{0}),
                 InvalidArgument, "chat: ", request.images.size(), " image(s) but the prompt's \"<image>\" placeholders ",
                 "do not match them (one placeholder per image, in order)");
  const int64_t context = lm.context_length();
  INTERNVL_CHECK(static_cast<int64_t>(result.input_ids.size()) + options.max_new_tokens <= context, InvalidArgument,
                 "the prompt (", result.input_ids.size(), " tokens) plus max_new_tokens (", options.max_new_tokens,
                 ") exceeds the model's context of ", context, " tokens");

  const auto eos = tok.find_token(conversation.eos_token());
  if (eos) options.stop_ids.push_back(*eos);
  job->conversation = &conversation;
  job->tokenizer = &tok;
  job->decode_options.skip_special_tokens = !lm.family().chat_keeps_special_tokens;
  job->stop_strings = g.stop_strings;
  prepared.job = std::move(job);
  return prepared;
}

std::shared_ptr<ChatJob> ChatPipeline::enqueue(Prepared prepared, const at::Tensor& features, TextCallback on_text) {
  auto job = prepared.job;
  const auto ids = at::tensor(job->result.input_ids, at::kLong).view({1, -1});
  SequenceSpec spec;
  spec.inputs_embeds = backend_.model->embed_with_images(ids, features, prepared.context_id);
  spec.prompt_ids = job->result.input_ids;
  spec.options = std::move(prepared.options);
  job->on_text = std::move(on_text);
  if (job->on_text || !job->stop_strings.empty()) {
    job->stream = std::make_unique<tokenizer::StreamDecoder>(*job->tokenizer, job->decode_options);
    job->matcher = std::make_unique<StopStringMatcher>(job->stop_strings);
  }
  // The job outlives the sequence's callbacks: they hold it until the engine drops them.
  spec.on_token = [job](int64_t token) { return job->on_token(token); };
  spec.on_finish = [job](const GenerateResult& generated) { job->on_finish(generated); };
  job->ticket = engine_.submit(std::move(spec));
  return job;
}

at::Tensor ChatPipeline::own_features(const Prepared& prepared) const {
  // One forward over all tiles of the request, as the official chat() runs them.
  if (prepared.pixels.empty()) return {};
  if (backend_.ensure_vision) backend_.ensure_vision();
  return backend_.model->extract_feature(at::cat(prepared.pixels, 0).to(backend_.device, backend_.dtype));
}

std::shared_ptr<ChatJob> ChatPipeline::submit(const ChatRequest& request, TextCallback on_text) {
  at::NoGradGuard no_grad;
  auto prepared = prepare(request);
  const auto features = own_features(prepared);
  return enqueue(std::move(prepared), features, std::move(on_text));
}

std::vector<std::shared_ptr<ChatJob>> ChatPipeline::submit_all(const std::vector<ChatRequest>& requests,
                                                              const std::vector<TextCallback>& on_text) {
  INTERNVL_CHECK(on_text.empty() || on_text.size() == requests.size(), InvalidArgument, "chat_batch: ",
                 on_text.size(), " callbacks for ", requests.size(), " requests");
  at::NoGradGuard no_grad;
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  for (const auto& request : requests) prepared.push_back(prepare(request));
  // A GEMM's rounding depends on its batch, so with row_exact (CPU) each request's tiles keep
  // their own forward, as alone; elsewhere all requests share the vision batches.
  if (engine_.options().row_exact) {
    std::vector<std::shared_ptr<ChatJob>> jobs;
    for (size_t i = 0; i < prepared.size(); ++i) {
      const auto features = own_features(prepared[i]);
      jobs.push_back(enqueue(std::move(prepared[i]), features, on_text.empty() ? TextCallback() : on_text[i]));
    }
    return jobs;
  }
  std::vector<at::Tensor> tiles;
  for (const auto& p : prepared) tiles.insert(tiles.end(), p.pixels.begin(), p.pixels.end());
  // Tiles of every request through InternViT together, max_vision_batch at a time.
  at::Tensor all_features;
  if (!tiles.empty()) {
    if (backend_.ensure_vision) backend_.ensure_vision();
    const auto all = at::cat(tiles, 0);
    const int64_t batch = std::max(1, backend_.max_vision_batch);
    std::vector<at::Tensor> chunks;
    for (int64_t begin = 0; begin < all.size(0); begin += batch) {
      const int64_t n = std::min(batch, all.size(0) - begin);
      chunks.push_back(backend_.model->extract_feature(all.narrow(0, begin, n).to(backend_.device, backend_.dtype)));
    }
    all_features = at::cat(chunks, 0);
  }
  std::vector<std::shared_ptr<ChatJob>> jobs;
  int64_t offset = 0;
  for (size_t i = 0; i < prepared.size(); ++i) {
    int64_t count = 0;
    for (const auto& p : prepared[i].pixels) count += p.size(0);
    const auto features = count > 0 ? all_features.narrow(0, offset, count) : at::Tensor();
    offset += count;
    jobs.push_back(enqueue(std::move(prepared[i]), features, on_text.empty() ? TextCallback() : on_text[i]));
  }
  return jobs;
}

ChatResult ChatPipeline::wait(ChatJob& job) {
  const auto generated = job.ticket->wait();
  ChatResult result = job.result;
  result.output_ids = generated.tokens;
  result.stopped_on_eos = generated.reason == StopReason::kStopToken;
  const bool by_string = job.stopped_by_string;
  result.finish_reason = result.stopped_on_eos                         ? FinishReason::kEndOfTurn
                         : by_string                                   ? FinishReason::kStopString
                         : generated.reason == StopReason::kMaxTokens ? FinishReason::kLength
                                                                       : FinishReason::kCancelled;
  if (generated.first_logits.defined()) {
    const auto first = generated.first_logits.contiguous();
    result.first_logits.assign(first.data_ptr<float>(), first.data_ptr<float>() + first.numel());
  }
  result.response = tokenizer::extract_response(*job.conversation, job.tokenizer->decode(result.output_ids, job.decode_options));
  for (const auto& stop : job.stop_strings) {
    const auto pos = result.response.find(stop);
    if (pos != std::string::npos) result.response = result.response.substr(0, pos);
  }
  return result;
}

void ChatPipeline::cancel(ChatJob& job) { job.ticket->cancel(); }
bool ChatPipeline::ready(const ChatJob& job) { return job.ticket->done(); }

}  // namespace internvl::generation

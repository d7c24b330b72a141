// The chat pipeline of InternVL-Chat checkpoints, as the official InternVLChatModel.chat runs it:
// prompt assembly from the conversation template, "<image>" placeholder expansion, vision
// features merged into the embeddings, generation through the batch engine, streaming with stop
// strings, and the response extraction. The facade (Model::chat / chat_batch / submit_chat) only
// forwards here.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "generation/engine.h"
#include "internvl/options.h"
#include "internvl/types.h"
#include "io/config.h"
#include "models/internvl_chat.h"
#include "tokenizer/tokenizer.h"

namespace internvl::generation {

using TextCallback = std::function<bool(const std::string& text)>;

// What the pipeline needs of a loaded checkpoint.
struct ChatBackend {
  const tokenizer::Tokenizer* tokenizer = nullptr;
  const io::InternVLChatConfig* config = nullptr;
  const models::InternVLChatImpl* model = nullptr;
  std::function<at::Tensor(const Image&, int max_tiles)> preprocess;  // [tiles, 3, S, S] float32 CPU
  std::function<void()> ensure_vision;  // reads the vision part if the load left it out
  std::string path;  // for error messages
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  int max_vision_batch = 32;  // tiles per InternViT forward when requests are encoded together
};

struct ChatJob;  // one submitted request

class ChatPipeline {
 public:
  ChatPipeline(ChatBackend backend, EngineOptions options);

  // Builds the prompt, encodes the images and queues the request; errors in the request throw
  // here (InvalidArgument, ImageError). on_text runs on the engine thread.
  std::shared_ptr<ChatJob> submit(const ChatRequest& request, TextCallback on_text);
  // Several requests at once, decoded together; without row_exact their images also go through
  // InternViT together (batches of at most max_vision_batch tiles), with it each request's tiles
  // keep their own forward (a GEMM's rounding depends on its batch). Throws on the first bad
  // request, before any is queued.
  std::vector<std::shared_ptr<ChatJob>> submit_all(const std::vector<ChatRequest>& requests,
                                                   const std::vector<TextCallback>& on_text);
  // Waits for a job; rethrows its error.
  static ChatResult wait(ChatJob& job);
  static void cancel(ChatJob& job);
  static bool ready(const ChatJob& job);

  Engine& engine() { return engine_; }

 private:
  struct Prepared;
  Prepared prepare(const ChatRequest& request) const;
  // The request's vision features from one forward of its own tiles (undefined without images).
  at::Tensor own_features(const Prepared& prepared) const;
  std::shared_ptr<ChatJob> enqueue(Prepared prepared, const at::Tensor& features, TextCallback on_text);

  ChatBackend backend_;
  Engine engine_;
};

}  // namespace internvl::generation

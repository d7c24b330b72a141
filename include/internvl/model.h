/// @file
/// The facade: one object per loaded checkpoint directory.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <vector>

#include "internvl/index.h"
#include "internvl/options.h"
#include "internvl/types.h"

namespace internvl {

/// A chat request running in a model's batch engine (Model::submit_chat): wait for its answer or
/// cancel it. Copies share the request. Thread-safe.
class ChatHandle {
 public:
  ChatHandle();   ///< an empty handle (valid() is false)
  ~ChatHandle();  ///< does not cancel: the request runs to its end
  ChatHandle(const ChatHandle&);             ///< shares the request
  ChatHandle& operator=(const ChatHandle&);  ///< shares the request
  ChatHandle(ChatHandle&&) noexcept;             ///< moves the request
  ChatHandle& operator=(ChatHandle&&) noexcept;  ///< moves the request

  bool valid() const;  ///< whether the handle refers to a request
  /// Waits for the answer (the same ChatResult Model::chat returns); rethrows the request's
  /// error (Error subclasses, or what its stream callback threw).
  ChatResult get() const;
  bool ready() const;  ///< whether get() would return without waiting
  /// Ends the request before its next decode step (finish_reason kCancelled, the tokens so far
  /// kept); no effect once it has ended.
  void cancel() const;

  /// @cond INTERNAL
  struct State;
  explicit ChatHandle(std::shared_ptr<State> state);
  /// @endcond

 private:
  std::shared_ptr<State> state_;
};

/// A loaded checkpoint: InternVL-C/G (embeddings, retrieval, zero-shot) or InternVL-Chat.
/// Const methods may be called from several threads at once.
class Model {
 public:
  /// Loads a checkpoint folder as `huggingface-cli download` leaves it: config.json (its
  /// `architectures` selects the model family) and model.safetensors or sharded safetensors with
  /// model.safetensors.index.json. `model` is that folder, or a Hugging Face id
  /// ("OpenGVLab/InternVL3-8B", "ORG/NAME@REVISION") already downloaded into the local cache
  /// ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub; nothing is fetched). Throws
  /// ConfigError / CheckpointError naming the file and field (for an id: every place looked in).
  static Model load(const std::string& model, const LoadOptions& options = {});

  Model(Model&&) noexcept;             ///< movable, not copyable
  Model& operator=(Model&&) noexcept;  ///< movable, not copyable
  ~Model();

  const ModelInfo& info() const;        ///< what was loaded
  const LoadOptions& options() const;   ///< how it was loaded
  /// The parts read so far: LoadOptions::parts (those this checkpoint has), plus those read since
  /// on first use.
  ModelParts loaded_parts() const;

  // ---- retrieval (InternVLModel checkpoints; others throw UnsupportedError) ----------------

  /// The official encode_image: one row per image, [images, clip_embed_dim]. Images are decoded
  /// and resized exactly as the official retrieval transform. ImageError names a bad image.
  Matrix embed_image(const std::vector<Image>& images, const EmbedOptions& options = {}) const;
  /// The official encode_text ('summarize:' prefix, 80 tokens): [texts, clip_embed_dim].
  Matrix embed_text(const std::vector<std::string>& texts, const EmbedOptions& options = {}) const;
  /// exp(logit_scale) · normalize(images) · normalize(texts)ᵀ, the official logits_per_image.
  Matrix logits_per_image(const Matrix& image_embeds, const Matrix& text_embeds) const;
  float logit_scale() const;  ///< exp of the checkpoint's logit_scale parameter

  /// An empty index bound to this model and mode.
  Index create_index(EmbedMode mode, const IndexOptions& options = {}) const;
  /// Identifies this checkpoint in indexes (architecture, sizes and a hash of config.json).
  const std::string& model_id() const;
  /// Text queries against an index of this model (mode taken from the index): the best `k`
  /// entries per query, best first.
  std::vector<std::vector<SearchHit>> retrieve(const std::vector<std::string>& texts, const Index& index,
                                               int k, int batch_size = 8) const;
  /// Image queries against an index of this model (mode taken from the index).
  std::vector<std::vector<SearchHit>> retrieve(const std::vector<Image>& images, const Index& index, int k,
                                               int batch_size = 8) const;

  /// Zero-shot classification, the clip_benchmark way: every class name through every template
  /// ("{}" is replaced by the name), text embeddings normalised, averaged, re-normalised.
  /// Returns [classes, clip_embed_dim].
  Matrix zero_shot_weights(const std::vector<std::string>& class_names,
                           const std::vector<std::string>& templates = default_templates(),
                           const EmbedOptions& options = {}) const;
  /// Top-k classes per image for weights from zero_shot_weights().
  std::vector<std::vector<ClassScore>> classify(const std::vector<Image>& images, const Matrix& class_weights,
                                                const std::vector<std::string>& class_names, int k,
                                                const EmbedOptions& options = {}) const;
  /// Built-in English ImageNet-style prompt templates.
  static const std::vector<std::string>& default_templates();

  // ---- chat (InternVLChatModel checkpoints; others throw UnsupportedError) ----------------

  /// Receives decoded text as it is generated; return false to stop generation.
  using StreamCallback = std::function<bool(const std::string& text)>;

  /// The official InternVLChatModel.chat: the config's template and system message, history,
  /// images as dynamic tiles (+ thumbnail); "<image>" placeholders in the question (or, with no
  /// history and no placeholder, "<image>\n" prepended for one image and the official README's
  /// "Image-1: <image>\nImage-2: <image>\n..." for several) become
  /// "<img>" + "<IMG_CONTEXT>" x (num_image_token x tiles) + "</img>"; generation stops on the
  /// template's end-of-turn token. InvalidArgument when the prompt does not fit the context.
  /// Runs in the model's batch engine as a batch of one, or with whatever other requests other
  /// threads have submitted: concurrent calls decode together, and greedy or seeded results are
  /// the same as alone (exactly on CPU float32). `on_text` runs on the engine's thread.
  ChatResult chat(const ChatRequest& request, const StreamCallback& on_text = {}) const;
  /// Several requests decoded together (up to LoadOptions::max_batch_size at a time, the rest
  /// joining as others finish). On CUDA their images go through the vision tower in shared
  /// batches; on CPU each request's images keep their own forward, so answers stay exact.
  /// `on_text` is empty or one callback (possibly empty) per request. Results in request order;
  /// throws the first request's error (a bad request is refused before any runs).
  std::vector<ChatResult> chat_batch(const std::vector<ChatRequest>& requests,
                                     const std::vector<StreamCallback>& on_text = {}) const;
  /// Queues one request and returns at once (after building its prompt and encoding its images,
  /// which throw here for a bad request); thread-safe. The request joins the running batch at
  /// its next decode step.
  ChatHandle submit_chat(const ChatRequest& request, const StreamCallback& on_text = {}) const;
  /// The template name (config.json `template`) and its default system message.
  const std::string& chat_template() const;

  /// @cond INTERNAL
  struct Impl;
  Impl& impl() const { return *impl_; }  // for the optional adapters (internvl/torch.h)
  /// @endcond

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  ///< namespace internvl

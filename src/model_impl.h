// Model::Impl: what a loaded checkpoint holds. Internal; shared by the facade and the adapters.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <variant>

#include "internvl/model.h"
#include "generation/chat.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "models/intern_vit.h"
#include "models/internvl_chat.h"
#include "models/internvl_clip.h"
#include "tokenizer/tokenizer.h"
#include "preprocess/image.h"

namespace internvl {

struct Model::Impl {
  ModelInfo info;
  LoadOptions options;
  io::ModelFamily family = io::ModelFamily::kInternVL;
  std::optional<io::InternVLConfig> clip_config;       // InternVLModel
  std::optional<io::InternVLChatConfig> chat_config;   // InternVLChatModel
  models::InternVisionModel vision{nullptr};
  models::InternVLClip clip{nullptr};                   // InternVLModel only
  models::InternVLChat chat{nullptr};                   // InternVLChatModel only
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;      // when the folder has tokenizer.model
  std::string model_id;
  ModelParts available_parts = ModelParts::kNone;  // what this architecture has
  mutable std::atomic<unsigned> loaded_parts{0};         // ModelParts bits read so far
  mutable std::mutex parts_mutex;                         // held while a part is read
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::kCPU;
  // InternVLChatModel only; last, so it (and its engine thread) goes before what it uses.
  std::unique_ptr<generation::ChatPipeline> chat_pipeline;

  // Reads those of `parts` this model has and has not read yet (LoadOptions::parts left them
  // out). Thread-safe; a failed read throws and is retried by the next call.
  void ensure(ModelParts parts) const;
  // One part, from the checkpoint folder: built apart, filled strictly, then adopted.
  // Returns the checkpoint keys under the part's names that nothing used.
  std::vector<std::string> read_part(ModelParts part, const io::Checkpoint& checkpoint);
  void make_chat_pipeline();  // once the language model and the tokenizer are there

  // Decoded RGB of a public Image (refused above options.max_image_pixels).
  preprocess::RgbImage decode(const Image& image) const;
  // Model-specific preprocessing: [tiles, 3, S, S] float32 on CPU.
  at::Tensor preprocess(const Image& image, int max_tiles = 0) const;

  const models::InternVLClipImpl& require_clip(const char* operation) const;
  const tokenizer::Tokenizer& require_tokenizer(const char* operation) const;
  // Receives each batch's [rows, E] float32 CPU as it is ready (`first`: its first image's
  // index); false stops after that batch.
  using BatchSink = std::function<bool(int64_t first, const at::Tensor& rows)>;
  // Official encode_image / encode_text on [n, E] float32 CPU; with a sink, the rows go there
  // instead and [0, E] is returned. Decoding of later batches overlaps the forward
  // (options.preprocess_threads).
  at::Tensor encode_images(const std::vector<Image>& images, const EmbedOptions& options,
                           const BatchSink& sink = {}) const;
  at::Tensor encode_texts(const std::vector<std::string>& texts, const EmbedOptions& options) const;
};

c10::ScalarType to_scalar_type(DType dtype);
c10::Device to_device(Device device, int index);

}  // namespace internvl

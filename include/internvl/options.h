/// @file
/// Options structs of the public API.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "internvl/types.h"

namespace internvl {

/// Where weights live and compute runs.
enum class Device { kCPU, kCUDA };

/// Compute dtype of a loaded model.
enum class DType { kFloat32, kBFloat16, kFloat16 };

/// Parts of a checkpoint, for LoadOptions::parts (combine with |).
enum class ModelParts : unsigned {
  kNone = 0,
  /// InternViT with what projects its output: clip_projector (InternVL-C/G) or mlp1 (chat).
  kVision = 1,
  /// InternVL-C/G: QLLaMA with clip_projector2 (text embeddings, and the G mode of images).
  kText = 2,
  /// InternVL-Chat: the language model.
  kLanguageModel = 4,
  kAll = 7,
};
/// Union of two sets of parts.
constexpr ModelParts operator|(ModelParts a, ModelParts b) {
  return static_cast<ModelParts>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
/// Whether `set` holds every part of `parts`.
constexpr bool contains(ModelParts set, ModelParts parts) {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(parts)) == static_cast<unsigned>(parts);
}

/// How Model::load places and converts a checkpoint.
struct LoadOptions {
  Device device = Device::kCPU;  ///< where weights live and compute runs
  int device_index = 0;          ///< CUDA device ordinal (ignored on CPU)
  DType dtype = DType::kFloat32; ///< compute dtype; checkpoints are converted once on load
  bool force_aten = false;       ///< use the plain ATen paths even where a CUDA kernel exists (A/B checks)
  int num_threads = 0;           ///< CPU intra-op threads; 0 keeps LibTorch's default
  /// Decompression-bomb guard: images with more pixels are refused with ImageError, from the
  /// header where the format allows (before decoding). Default: Pillow's DecompressionBombError
  /// threshold, 2 x 89,478,485. <= 0 lifts it (a hard 2^30 cap remains).
  int64_t max_image_pixels = int64_t{2} * 89478485;
  /// Refuse to load (ResourceError) when the weights, converted to `dtype`, need more memory than
  /// is available (MemAvailable; CPU only so far), instead of being killed part-way. The
  /// environment variable INTERNVL_MEMORY_LIMIT_BYTES, when set, replaces the measured figure.
  bool check_memory = true;
  /// Chat requests decoded together by the batch engine (Model::chat from several threads,
  /// chat_batch, submit_chat); more wait their turn. > 0.
  int max_batch_size = 8;
  /// Parts read by Model::load; a part left out is read from the same folder on the first call
  /// that needs it (thread-safe; the folder must still be there). A text-only search passes
  /// kText and never reads the vision tower. Parts the checkpoint does not have are ignored.
  ModelParts parts = ModelParts::kAll;
};

/// Options of Model::embed_image / embed_text / retrieve / classify.
struct EmbedOptions {
  EmbedMode mode = EmbedMode::kC;  ///< InternVL-C or InternVL-G (images; text is the same for both)
  int batch_size = 8;              ///< inputs per forward pass (> 0)
  bool normalize = false;          ///< L2-normalise rows (the official encode_* return them unnormalised)
  /// Images only: threads that decode and preprocess the next batches while the vision model
  /// runs the current one (0: one after the other, on the calling thread). Results are the same
  /// either way; an ImageError still surfaces in input order, after the batches before it.
  int preprocess_threads = 1;
  /// Model::embed_image only: receives each batch's rows, in order, as soon as they are ready
  /// (`first` is the index of the batch's first image); return false to stop after this batch.
  /// When set, rows are not also kept: embed_image returns an empty [0, clip_embed_dim] matrix.
  std::function<bool(int64_t first, const Matrix& rows)> on_batch;
};

/// Options of Model::chat: decoding as transformers' generate does it.
struct GenerationOptions {
  int max_new_tokens = 512;         ///< > 0; prompt + max_new_tokens must fit the model's context
  bool do_sample = false;           ///< false: greedy (the official chat() default)
  double temperature = 1.0;         ///< > 0, sampling only
  int top_k = 0;                    ///< 0 = off, sampling only
  double top_p = 1.0;               ///< (0, 1], 1 = off, sampling only
  double repetition_penalty = 1.0;  ///< > 0, 1 = off; applies to prompt and generated tokens
  uint64_t seed = 0;                ///< sampling is reproducible for a given seed
  std::vector<std::string> stop_strings;  ///< extra strings that end the response (not included)
  /// Lower max_new_tokens to what the context leaves after the prompt (a server's default
  /// budget); false: a prompt + max_new_tokens over the context is InvalidArgument.
  bool fit_context = false;
};

/// Inputs of Model::chat, as the official InternVLChatModel.chat takes them.
struct ChatRequest {
  std::string question;         ///< "<image>" marks where images go; see Model::chat
  std::vector<Image> images;    ///< one per "<image>" placeholder, in order
  std::vector<ChatTurn> history;  ///< earlier (question, answer) turns
  std::string system_message;   ///< empty: the template's default
  int max_tiles = 0;            ///< dynamic tiles per image; 0: the config's max_dynamic_patch
  GenerationOptions generation;  ///< decoding: greedy or sampled, limits, stop strings
};

const char* to_string(Device device);  ///< "cpu" | "cuda"
const char* to_string(DType dtype);    ///< "fp32" | "bf16" | "fp16"
/// Parses "cpu" or "cuda"; InvalidArgument otherwise.
Device parse_device(const std::string& text);
/// Parses "cpu", "cuda" or "cuda:N" into `options.device` and `options.device_index`, as every
/// tool's --device takes it; InvalidArgument naming the text otherwise.
void set_device(LoadOptions& options, const std::string& text);
/// Parses "fp32"/"float32", "bf16"/"bfloat16" or "fp16"/"float16"; InvalidArgument otherwise.
DType parse_dtype(const std::string& text);

}  ///< namespace internvl

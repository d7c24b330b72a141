/// @file
/// Plain value types of the public API (no LibTorch or OpenCV types).
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace internvl {

/// Embeddings and score matrices: one row per input, row-major float.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// InternVL-C (attention pooling over InternViT) or InternVL-G (adds the QLLaMA query branch).
enum class EmbedMode { kC, kG };
const char* to_string(EmbedMode mode);       ///< "c" | "g"
EmbedMode parse_embed_mode(const std::string& text);  ///< "c"/"g" (case-insensitive); InvalidArgument

/// One search result.
struct SearchHit {
  std::string id;   ///< the id given when the entry was added (e.g. an image path)
  int64_t row = 0;  ///< row in the index
  float score = 0;  ///< cosine similarity in [-1, 1]
};

/// One earlier exchange of a conversation.
struct ChatTurn {
  std::string question;  ///< what the user asked (with its "<image>" placeholders)
  std::string answer;    ///< what the model answered
};

/// Why a chat response ended.
enum class FinishReason {
  kEndOfTurn,   ///< the template's end-of-turn token
  kStopString,  ///< one of GenerationOptions::stop_strings (cut from the response)
  kLength,      ///< max_new_tokens reached
  kCancelled,   ///< the stream callback returned false
};
const char* to_string(FinishReason reason);  ///< "end_of_turn" | "stop_string" | "length" | "cancelled"

/// What Model::chat produced.
struct ChatResult {
  std::string response;               ///< decoded, cut at the end-of-turn token, stripped (official)
  std::string prompt;                 ///< the full prompt string given to the tokenizer
  std::vector<int64_t> input_ids;     ///< the tokenised prompt
  std::vector<int64_t> output_ids;    ///< new tokens (the stop token included when one ended it)
  std::vector<float> first_logits;    ///< logits that chose the first new token [vocab]
  std::vector<int> tiles_per_image;   ///< num_patches_list
  bool stopped_on_eos = false;        ///< ended by the end-of-turn token (not max_new_tokens)
  FinishReason finish_reason = FinishReason::kLength;  ///< why generation ended
};

/// One zero-shot prediction.
struct ClassScore {
  int class_index = 0;    ///< row of the class weights
  std::string label;      ///< the class name
  float score = 0;        ///< cosine similarity between image and class embedding
  float probability = 0;  ///< softmax over classes of exp(logit_scale) * score
};

/// An image to read: a file path, encoded bytes (JPEG, PNG, BMP, GIF, WebP, TIFF), or raw
/// interleaved 8-bit RGB pixels. Decoding follows the official PIL `convert('RGB')`.
class Image {
 public:
  /// A file, read and decoded when the image is used.
  static Image from_file(std::string path);
  /// Encoded bytes in memory; `name` appears in error messages.
  static Image from_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");
  /// Copies `height` rows of `width` RGB pixels, `stride_bytes` apart (0 = width * 3).
  static Image from_rgb(const uint8_t* pixels, int width, int height, std::size_t stride_bytes = 0);

  /// Which constructor made the image.
  enum class Kind { kFile, kBytes, kRgb };
  Kind kind() const { return kind_; }  ///< which constructor made the image
  const std::string& name() const { return name_; }  ///< the path, or the given name
  const std::vector<uint8_t>& data() const { return data_; }  ///< encoded bytes (kBytes) or pixels (kRgb)
  int width() const { return width_; }    ///< kRgb only
  int height() const { return height_; }  ///< kRgb only

 private:
  Kind kind_ = Kind::kFile;
  std::string name_;
  std::vector<uint8_t> data_;
  int width_ = 0;
  int height_ = 0;
};

/// What a loaded checkpoint is.
struct ModelInfo {
  std::string path;                ///< the checkpoint directory
  std::string architecture;        ///< config.json architectures[0]: "InternVLModel", "InternVLChatModel"
  std::string language_model;      ///< llm_config.architectures[0], e.g. "Qwen2ForCausalLM" ("LlamaForCausalLM" for QLLaMA)
  int vision_hidden_size = 0;      ///< InternViT width
  int vision_layers = 0;           ///< InternViT depth
  int image_size = 0;              ///< input resolution of the vision tower (per tile for chat models)
  int patch_size = 0;              ///< InternViT patch size in pixels
  std::string vision_norm;         ///< "rms_norm" | "layer_norm"
  /// Parameters materialised by this build of the library (for parts not read yet: their
  /// checkpoint tensors).
  std::size_t num_parameters = 0;
  /// Checkpoint keys no implemented component consumed (of the parts read at load).
  std::vector<std::string> unused_weights;
};

}  ///< namespace internvl

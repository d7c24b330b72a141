// The facade: one object per loaded checkpoint directory.
#pragma once

#include <memory>
#include <string>

#include "internvl/options.h"
#include "internvl/types.h"

namespace internvl {

class Model {
 public:
  // Loads a checkpoint folder as `huggingface-cli download` leaves it: config.json (its
  // `architectures` selects the model family) and model.safetensors or sharded safetensors with
  // model.safetensors.index.json. Throws ConfigError / CheckpointError naming the file and field.
  static Model load(const std::string& directory, const LoadOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelInfo& info() const;
  const LoadOptions& options() const;

  struct Impl;
  Impl& impl() const { return *impl_; }  // for the optional adapters (internvl/torch.h)

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace internvl

// Image-text similarity with InternVL-C/G: embeddings [n, d] as Eigen matrices.
#include <internvl/internvl.h>

#include <iostream>

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::cerr << "usage: embeddings MODEL_DIR IMAGE TEXT...\n";
    return 2;
  }
  const auto model = internvl::Model::load(argv[1]);  // e.g. InternVL-14B-224px
  internvl::EmbedOptions options;
  options.mode = internvl::EmbedMode::kG;  // or kC
  const internvl::Matrix image = model.embed_image({internvl::Image::from_file(argv[2])}, options);
  const std::vector<std::string> texts(argv + 3, argv + argc);
  const internvl::Matrix text = model.embed_text(texts, options);
  const internvl::Matrix logits = model.logits_per_image(image, text);  // [1, texts]
  for (int i = 0; i < logits.cols(); ++i) std::cout << logits(0, i) << "  " << texts[i] << "\n";
} catch (const internvl::Error& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}

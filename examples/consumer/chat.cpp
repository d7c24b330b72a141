// One question about an image, streamed as it is generated.
#include <internvl/internvl.h>

#include <iostream>

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::cerr << "usage: chat MODEL_DIR IMAGE QUESTION\n";
    return 2;
  }
  internvl::LoadOptions load;  // load.device = internvl::Device::kCUDA; load.dtype = internvl::DType::kBFloat16;
  const auto model = internvl::Model::load(argv[1], load);  // e.g. InternVL2-2B
  internvl::ChatRequest request;
  request.question = std::string("<image>\n") + argv[3];
  request.images = {internvl::Image::from_file(argv[2])};
  request.generation.max_new_tokens = 64;
  const auto result = model.chat(request, [](const std::string& piece) {
    std::cout << piece << std::flush;
    return true;  // false stops generation
  });
  std::cout << "\n(" << result.output_ids.size() << " tokens)\n";
} catch (const internvl::Error& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}

// One libFuzzer executable per entry point; INTERNVL_FUZZ_TARGET (set by CMake) names it.
#include <cstring>

#include "fuzz/fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const internvl::fuzz::Entry entry = [] {
    for (const auto& target : internvl::fuzz::targets()) {
      if (std::strcmp(target.name, INTERNVL_FUZZ_TARGET) == 0) return target.entry;
    }
    return internvl::fuzz::Entry{nullptr};
  }();
  entry(data, size);
  return 0;
}

// BPE encode throughput and load time of the byte-level BPE backend (Qwen2Tokenizer) on a text
// file cut into documents of about --doc-bytes bytes (at newlines), one thread. Prints one JSON
// line; bench/bpe_tokenizer_peer.py measures the Rust `tokenizers` package on the same input.
//   bpe_tokenizer_bench --tokenizer DIR --text FILE [--doc-bytes 4096] [--repeats 3]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The same cut as the peer: ~size bytes, then up to the next newline.
std::vector<std::string> documents(const std::string& text, size_t size) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + size);
    const size_t nl = text.find('\n', end);
    end = nl == std::string::npos ? text.size() : nl + 1;
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, path;
  size_t doc_bytes = 4096;
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--tokenizer")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--text")) path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--doc-bytes")) doc_bytes = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::stoi(argv[i + 1]);
  }
  if (dir.empty() || path.empty()) {
    std::fprintf(stderr, "usage: %s --tokenizer DIR --text FILE [--doc-bytes N] [--repeats N]\n", argv[0]);
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  const internvl::tokenizer::Tokenizer tok(dir);
  const double load_s = seconds_since(start);
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto docs = documents(text, doc_bytes);
  std::vector<double> times;
  std::vector<std::vector<int64_t>> encoded(docs.size());
  for (int r = 0; r < repeats; ++r) {
    start = std::chrono::steady_clock::now();
    for (size_t d = 0; d < docs.size(); ++d) encoded[d] = tok.encode(docs[d], false);
    times.push_back(seconds_since(start));
  }
  uint64_t h = 0xCBF29CE484222325ull, tokens = 0;
  for (const auto& ids : encoded) {
    for (const int64_t id : ids) h = (h ^ static_cast<uint64_t>(id + 1)) * 0x100000001B3ull;
    h *= 0x100000001B3ull;
    tokens += ids.size();
  }
  double best = times.front();
  for (const double t : times) best = std::min(best, t);
  std::printf(
      "{\"impl\": \"internvl-cpp %s\", \"load_s\": %.4f, \"bytes\": %zu, \"docs\": %zu, \"tokens\": %llu, "
      "\"ids_fnv\": \"%016llx\", \"first_s\": %.4f, \"encode_s\": %.4f, \"mb_s\": %.2f}\n",
      internvl::tokenizer::to_string(tok.flavour()), load_s, text.size(), docs.size(),
      static_cast<unsigned long long>(tokens), static_cast<unsigned long long>(h), times.front(), best,
      text.size() / best / 1e6);
  return 0;
}

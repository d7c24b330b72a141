// Fuzz entry points: each feeds arbitrary bytes through one parser the way the library meets
// untrusted input. internvl::Error is the expected answer to a bad input and is swallowed; any
// other exception, a crash or a sanitizer report is a bug. Shared by the libFuzzer targets
// (tests/fuzz/fuzz_*.cpp) and the regression test that replays tests/data/fuzz_regressions/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace internvl::fuzz {

using Entry = void (*)(const uint8_t* data, std::size_t size);

// First byte: 0 = a single .safetensors file (rest of the input), 1 = a sharded checkpoint whose
// index JSON is the text before the first "\n--\n" and whose shard s1.safetensors is the rest.
void safetensors(const uint8_t* data, std::size_t size);
// config.json text through read_config_json, detect_family and the family's parser.
void config(const uint8_t* data, std::size_t size);
// Encoded image bytes through decode_bytes, then the retrieval transform and dynamic tiling.
void image(const uint8_t* data, std::size_t size);
// First byte picks the fixture tokenizer and the operation (encode, retrieval encode, decode,
// streaming decode); the rest is text or little-endian 16-bit ids.
void tokenizer(const uint8_t* data, std::size_t size);
// The Qwen chat fixtures' byte-level BPE: first byte picks the tokenizer, the operation (encode +
// decode, decode, streaming decode of raw ids, encode + streaming) and the decode options; the rest
// is text or little-endian 16-bit ids.
void tokenizer_bpe(const uint8_t* data, std::size_t size);
// Embedding index file bytes through EmbeddingIndex::load, then a search.
void index(const uint8_t* data, std::size_t size);
// The server's request parser: first byte picks chat / embeddings / search, the rest is the JSON
// body (parse_body, then the endpoint's parser); every data: URL image is decoded and the chat's
// question is streamed through StreamText in pieces (checked equal to the unary answer).
void server_request(const uint8_t* data, std::size_t size);

struct Target {
  const char* name;  // also the folder name of its corpus
  Entry entry;
};
const std::vector<Target>& targets();

}  // namespace internvl::fuzz

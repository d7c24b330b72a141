#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

namespace {

// Decodes the code point starting at text[pos]; returns its byte length (0 when malformed).
size_t decode_at(std::string_view text, size_t pos, char32_t* out) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    *out = b0;
    return 1;
  }
  size_t length = 0;
  char32_t cp = 0;
  char32_t min_value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F, min_value = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F, min_value = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07, min_value = 0x10000;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_value || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *out = cp;
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp;
    const size_t n = decode_at(text, pos, &cp);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

bool is_python_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string_view python_lstrip(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp;
    const size_t n = decode_at(text, pos, &cp);
    if (n == 0 || !is_python_whitespace(cp)) break;
    pos += n;
  }
  return text.substr(pos);
}

std::string_view python_rstrip(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    // Walk back over at most three continuation bytes to the first byte of the last code point.
    while (start > 0 && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    char32_t cp;
    const size_t n = decode_at(text, start, &cp);
    if (n == 0 || start + n != end || !is_python_whitespace(cp)) break;
    end = start;
  }
  return text.substr(0, end);
}

std::string_view python_strip(std::string_view text) { return python_rstrip(python_lstrip(text)); }

std::string python_replace(std::string_view text, std::string_view old_text, std::string_view new_text,
                           int64_t count) {
  std::string out;
  out.reserve(text.size());
  if (old_text.empty()) {
    // Python inserts `new` between every character; not needed here, keep the text unchanged.
    out.assign(text);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = text.find(old_text, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(new_text);
    pos = hit + old_text.size();
    ++done;
  }
  out.append(text.substr(pos));
  return out;
}

namespace {

// PreTrainedTokenizerBase.clean_up_tokenization, applied in this order.
constexpr std::pair<std::string_view, std::string_view> kCleanUpRules[] = {
    {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

bool ends_on_char_boundary(std::string_view text) {
  size_t start = text.size();
  while (start > 0 && text.size() - start < 4 && (static_cast<unsigned char>(text[start - 1]) & 0xC0) == 0x80) --start;
  if (start == 0) return start == text.size();
  const auto lead = static_cast<unsigned char>(text[start - 1]);
  const size_t have = text.size() - start + 1;
  const size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return have >= need;
}

}  // namespace

std::string clean_up_tokenization(std::string_view text) {
  std::string out(text);
  for (const auto& [from, to] : kCleanUpRules) out = python_replace(out, from, to);
  return out;
}

bool clean_up_tokenization_is_final(std::string_view prefix) {
  if (!ends_on_char_boundary(prefix)) return false;
  // Every pattern starts with ' ': an occurrence can only span the end of the (partially cleaned)
  // prefix when a suffix of it is a proper prefix of the pattern.
  std::string current(prefix);
  for (const auto& [from, to] : kCleanUpRules) {
    for (size_t length = 1; length < from.size() && length <= current.size(); ++length) {
      if (std::string_view(current).substr(current.size() - length) == from.substr(0, length)) return false;
    }
    current = python_replace(current, from, to);
  }
  return true;
}

}  // namespace internvl::tokenizer

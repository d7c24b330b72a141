// Small UTF-8 helpers shared by the tokenizer and the chat templates. Where Python semantics are
// reproduced (str.isspace, str.strip, str.replace) the function says so.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace internvl::tokenizer {

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Python's str.isspace() for one code point.
bool is_python_whitespace(char32_t code_point);

// Python str.lstrip() / rstrip() / strip() without arguments (Unicode whitespace).
std::string_view python_lstrip(std::string_view text);
std::string_view python_rstrip(std::string_view text);
std::string_view python_strip(std::string_view text);

// Python str.replace(old, new, count) (count < 0: all occurrences, non-overlapping, left to right).
std::string python_replace(std::string_view text, std::string_view old_text, std::string_view new_text,
                           int64_t count = -1);

// transformers' PreTrainedTokenizerBase.clean_up_tokenization (" ." -> "." and so on, in order).
std::string clean_up_tokenization(std::string_view text);

// True when `prefix` ends on a UTF-8 character boundary and, for every continuation,
// clean_up_tokenization(prefix + rest) == clean_up_tokenization(prefix) + clean_up_tokenization(rest).
bool clean_up_tokenization_is_final(std::string_view prefix);

}  // namespace internvl::tokenizer

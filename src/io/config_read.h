// Reading typed fields of config JSON with the official defaults (ScaleLLM's LOAD_ARG_OR), shared by
// config.cpp and the decoder families (io/llm_families/). Errors name the file and field.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "common/check.h"

namespace internvl::io {

using nlohmann::json;

// Reads `key` when present and not null; otherwise keeps the default (ScaleLLM's LOAD_ARG_OR).
template <typename T>
inline void read_or(const json& j, const char* key, T& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if constexpr (std::is_same_v<T, int>) {
    // get<int>() would truncate 3.5 and wrap (or, from a float, be undefined for) out-of-range values.
    const bool integral = it->is_number_integer() ||
                          (it->is_number_float() && std::trunc(it->get<double>()) == it->get<double>());
    INTERNVL_CHECK(it->is_number() && integral, ConfigError, where, ": field '", key, "' must be an integer, got ",
                   it->dump());
    const double value = it->is_number_unsigned() ? static_cast<double>(it->get<uint64_t>()) : it->get<double>();
    INTERNVL_CHECK(value >= std::numeric_limits<int>::min() && value <= std::numeric_limits<int>::max(), ConfigError,
                   where, ": field '", key, "' = ", it->dump(), " is out of range");
    out = static_cast<int>(value);
    return;
  }
  try {
    out = it->get<T>();
  } catch (const json::exception& e) {
    INTERNVL_THROW(ConfigError, where, ": field '", key, "' has the wrong type (", e.what(), ")");
  }
  if constexpr (std::is_floating_point_v<T>) {
    INTERNVL_CHECK(std::isfinite(out), ConfigError, where, ": field '", key, "' must be finite");
  }
}

}  // namespace internvl::io

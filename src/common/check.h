// INTERNVL_CHECK(cond, ErrorType, parts...): throws ErrorType with the parts streamed together.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "internvl/error.h"

namespace internvl::detail {

template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

}  // namespace internvl::detail

#define INTERNVL_THROW(ErrorType, ...) throw ErrorType(::internvl::detail::concat(__VA_ARGS__))

#define INTERNVL_CHECK(cond, ErrorType, ...) \
  do {                                       \
    if (!(cond)) INTERNVL_THROW(ErrorType, __VA_ARGS__); \
  } while (0)

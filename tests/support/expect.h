// Assertion helpers shared by tests.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "internvl/error.h"

namespace internvl::testing {

// fn() throws a ConfigError whose message names `file_name`.
template <typename Fn>
void expect_config_error_naming(Fn&& fn, const std::string& file_name) {
  try {
    fn();
    ADD_FAILURE() << "expected ConfigError naming " << file_name;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(file_name), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got: " << e.what();
  }
}

}  // namespace internvl::testing

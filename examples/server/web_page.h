// The page served at GET / (web/index.html, compiled in).
#pragma once

#include <string>

namespace internvl::server {

const std::string& web_page();

}  // namespace internvl::server

// internvl-retrieve: files, messages and the progress display.
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli.h"

namespace fs = std::filesystem;

namespace retrieve {

// ---- files -----------------------------------------------------------------------------------

bool has_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* const kExtensions[] = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"};
  for (const char* known : kExtensions) {
    if (ext == known) return true;
  }
  return false;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) throw ToolError("cannot resolve '" + path + "': " + ec.message());
  return absolute.lexically_normal().string();
}

namespace {

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

void collect_folder(const std::string& folder, std::vector<std::string>& out, int64_t* ignored) {
  std::vector<std::string> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw ToolError("cannot read folder '" + folder + "': " + ec.message());
  for (const fs::recursive_directory_iterator end; it != end;) {
    const fs::directory_entry& entry = *it;
    std::error_code type_ec;
    if (is_hidden(entry.path())) {
      if (entry.is_directory(type_ec)) it.disable_recursion_pending();
    } else if (entry.is_regular_file(type_ec)) {  // follows symbolic links to files
      if (has_image_extension(entry.path().string())) {
        found.push_back(entry.path().string());
      } else if (ignored != nullptr) {
        ++*ignored;
      }
    }
    it.increment(ec);
    if (ec) {
      warn("stopped reading below '" + folder + "': " + ec.message());
      break;
    }
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
}

}  // namespace

std::vector<std::string> collect_images(const std::vector<std::string>& inputs, bool absolute, int64_t* ignored) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    const auto status = fs::status(input, ec);
    if (ec || !fs::exists(status)) throw ToolError("no such file or folder: '" + input + "'");
    if (fs::is_directory(status)) {
      collect_folder(input, files, ignored);
    } else {
      files.push_back(input);
    }
  }
  if (absolute) files = drop_duplicate_files(files);
  return files;
}

std::vector<std::string> drop_duplicate_files(const std::vector<std::string>& files, int64_t* duplicates) {
  std::set<std::string> seen;  // canonical paths: a link and its target are one file
  std::vector<std::string> unique;
  int64_t dropped = 0;
  std::string first_dropped;
  for (const auto& file : files) {
    auto path = absolute_path(file);
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(path, ec);
    if (seen.insert(ec ? path : canonical.string()).second) {
      unique.push_back(std::move(path));
    } else if (dropped++ == 0) {
      first_dropped = file;
    }
  }
  if (duplicates != nullptr) *duplicates = dropped;
  if (dropped > 0) {
    info("skipped " + std::to_string(dropped) + " duplicate(s): file(s) already listed under another path or link (" +
         std::string(dropped > 1 ? "first: " : "") + retrieve::quoted(first_dropped) + ")");
  }
  return unique;
}

std::vector<std::string> entries_gone(const std::vector<std::string>& ids, const std::vector<std::string>& inputs) {
  std::vector<std::string> roots;
  for (const auto& input : inputs) roots.push_back(absolute_path(input));
  std::vector<std::string> gone;
  for (const auto& id : ids) {
    const bool below = roots.empty() || std::any_of(roots.begin(), roots.end(), [&](const std::string& root) {
                         return id == root || (id.size() > root.size() && id.compare(0, root.size(), root) == 0 &&
                                               (root.back() == '/' || id[root.size()] == '/'));
                       });
    std::error_code ec;
    if (below && !fs::exists(id, ec)) gone.push_back(id);
  }
  return gone;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ToolError("cannot read '" + path + "': " + std::strerror(errno));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) throw ToolError("error reading '" + path + "'");
  if (!lines.empty() && lines.front().rfind("\xEF\xBB\xBF", 0) == 0) lines.front().erase(0, 3);  // UTF-8 BOM
  return lines;
}

void write_file_atomically(const std::string& path, const std::vector<std::string_view>& parts) {
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string temp = (folder / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    throw ToolError("cannot write '" + path + "': cannot create a temporary file in '" + folder.string() +
                    "': " + std::strerror(errno));
  }
  auto fail = [&](const std::string& what, int error) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw ToolError("cannot write '" + path + "': " + what + ": " + std::strerror(error));
  };
  for (const auto& part : parts) {
    const char* data = part.data();
    size_t left = part.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write", errno);
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  // mkstemp creates the file 0600; give it the permissions a plain open() would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) fail("fchmod", errno);
  if (::fsync(fd) != 0) fail("fsync", errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    throw ToolError("cannot write '" + path + "': close: " + std::strerror(error));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    throw ToolError("cannot write '" + path + "': rename: " + std::strerror(error));
  }
  const int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {  // make the rename itself durable; best effort
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

// ---- messages --------------------------------------------------------------------------------

namespace {
bool g_quiet = false;
Progress* g_progress = nullptr;  // the bar on screen, if any
}  // namespace

void set_quiet(bool quiet) { g_quiet = quiet; }

static void message(const std::string& text) {
  if (g_progress != nullptr) g_progress->clear_line();
  std::fprintf(stderr, "%s\n", text.c_str());
  if (g_progress != nullptr) g_progress->redraw();
}

void info(const std::string& text) {
  if (!g_quiet) message(text);
}

void warn(const std::string& text) { message("warning: " + text); }

std::string printable(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string quoted(const std::string& text) { return "\"" + printable(text) + "\""; }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof(buffer), "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(buffer, sizeof(buffer), "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buffer, sizeof(buffer), "%lds", s);
  return buffer;
}

// ---- progress --------------------------------------------------------------------------------

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), enabled_(!g_quiet && total > 0),
      terminal_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  if (enabled_ && terminal_) {
    g_progress = this;
    redraw();
  }
}

Progress::~Progress() { finish(); }

std::string Progress::render(bool for_terminal) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 && done_ > 0 ? done_ / elapsed : 0.0;
  const double percent = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  std::string text = label_ + " ";
  if (for_terminal) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * percent / 100.0);
    text += "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
  }
  char buffer[160];
  std::snprintf(buffer, sizeof(buffer), "%lld/%lld (%.0f%%)", static_cast<long long>(done_),
                static_cast<long long>(total_), percent);
  text += buffer;
  if (rate > 0) {
    std::snprintf(buffer, sizeof(buffer), "  %.2f images/s  ETA %s", rate,
                  format_duration(static_cast<double>(total_ - done_) / rate).c_str());
    text += buffer;
  } else {
    text += "  starting...";
  }
  return text;
}

void Progress::update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (terminal_) {
    if (since >= 0.1 || done_ == total_) redraw();
  } else if (since >= 30.0) {
    last_draw_ = now;
    std::fprintf(stderr, "%s\n", render(false).c_str());
  }
}

void Progress::clear_line() {
  if (shown_) {
    std::fputs("\r\033[K", stderr);
    shown_ = false;
  }
}

void Progress::redraw() {
  if (!enabled_ || !terminal_) return;
  last_draw_ = std::chrono::steady_clock::now();
  std::fprintf(stderr, "\r\033[K%s", render(true).c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Progress::finish() {
  clear_line();
  if (g_progress == this) g_progress = nullptr;
  enabled_ = false;
}

}  // namespace retrieve

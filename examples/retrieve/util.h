// internvl-retrieve: files, messages and the progress display.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retrieve {

// ---- files -----------------------------------------------------------------------------------

// True for the recognised image extensions: jpg jpeg png bmp gif webp tif tiff (any case).
bool has_image_extension(const std::string& path);

// The files to read for `inputs`: a folder contributes every non-hidden file with an image
// extension below it (recursively, sorted, reported as folder/relative/path); a file is taken as
// given, whatever its extension. `absolute` makes every path absolute and lexically normal, and
// drops duplicates (drop_duplicate_files). A missing input throws ToolError. `ignored` counts
// files in the folders that were passed over (other extensions).
std::vector<std::string> collect_images(const std::vector<std::string>& inputs, bool absolute, int64_t* ignored);

// `files` made absolute and lexically normal, each file once: two paths are the same file when
// their canonical forms agree (a.jpg and ./a.jpg, a link and its target, a file reached through
// a linked folder); the first spelling is kept. Says how many were dropped (info) and counts them
// in `*duplicates`.
std::vector<std::string> drop_duplicate_files(const std::vector<std::string>& files, int64_t* duplicates = nullptr);

// The index ids (absolute paths) that --prune drops: those whose file no longer exists, below
// one of `inputs` (folders, or files equal to the id) or, when `inputs` is empty, anywhere.
std::vector<std::string> entries_gone(const std::vector<std::string>& ids, const std::vector<std::string>& inputs);

// Absolute, lexically normal form of `path` (no file system access beyond the current directory).
std::string absolute_path(const std::string& path);

// Lines of a UTF-8 text file, without "\n" / "\r\n". Throws ToolError naming the file.
std::vector<std::string> read_lines(const std::string& path);

// Writes `parts` one after another to `path` so that it appears whole or not at all: a temporary
// file in the same folder (mkstemp), fsync, rename. Throws ToolError naming the path.
void write_file_atomically(const std::string& path, const std::vector<std::string_view>& parts);

// ---- messages on stderr ---------------------------------------------------------------------

void set_quiet(bool quiet);
void info(const std::string& message);  // suppressed by --quiet
void warn(const std::string& message);  // always shown, prefixed "warning: "

// A string for one line of terminal output: control characters escaped (\n, \t, \x1b).
std::string printable(const std::string& text);
// printable() in double quotes.
std::string quoted(const std::string& text);

// Progress over `total` items: a redrawn bar with rate and ETA when stderr is a terminal, a
// plain line every 30 s otherwise; nothing with --quiet. warn()/info() keep the bar intact.
class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(int64_t done);  // items finished so far
  void finish();              // clears the bar

  void clear_line();  // for messages printed while the bar is shown
  void redraw();

 private:
  std::string render(bool for_terminal) const;

  std::string label_;
  int64_t total_ = 0;
  int64_t done_ = 0;
  bool enabled_ = false;
  bool terminal_ = false;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// "1h02m", "4m12s", "9s".
std::string format_duration(double seconds);

}  // namespace retrieve

// internvl-retrieve: the --html pages (one self-contained file; images referenced, not copied).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "internvl/types.h"

namespace retrieve {

// One image tile: a thumbnail with caption lines, and optional labelled bars (0..1).
struct GalleryItem {
  std::string image;                                // a path (as the tool reports it)
  std::string title;                                // first caption line, e.g. "#1  0.2345"
  std::vector<std::pair<std::string, float>> bars;  // e.g. class -> probability
};

struct GallerySection {
  std::string heading;
  std::string heading_image;  // an image query shows its image beside the heading
  std::vector<GalleryItem> items;
};

// A page of sections of thumbnails (search results, classifications).
std::string render_gallery(const std::string& html_path, const std::string& title, const std::string& subtitle,
                           const std::vector<GallerySection>& sections);

// The image x text matrix of `embed` (logits_per_image), the best image per text highlighted.
std::string render_matrix(const std::string& html_path, const std::string& title, const std::string& subtitle,
                          const std::vector<std::string>& images, const std::vector<std::string>& texts,
                          const internvl::Matrix& logits);

// The src attribute for `image` seen from the folder of `html_path`: a relative URL when the image
// can be reached from there, else a file:// URL; percent-encoded.
std::string image_url(const std::string& html_path, const std::string& image);

std::string html_escape(const std::string& text);

}  // namespace retrieve

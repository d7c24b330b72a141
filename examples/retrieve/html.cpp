// internvl-retrieve: the --html pages.
#include "html.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "util.h"

namespace fs = std::filesystem;

namespace retrieve {

namespace {

std::string percent_encode(const std::string& path) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

const char* kStyle = R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin-bottom:.2em} p.sub{color:#666;margin-top:0}
section{margin:1.5em 0;padding-top:.5em;border-top:1px solid #ddd}
h2{font-size:1.1em;display:flex;align-items:center;gap:.6em;white-space:pre-wrap}
h2 img{height:64px;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:200px;background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:6px}
figure img{width:200px;height:160px;object-fit:contain;background:#eee;display:block}
figcaption{font-size:.85em;margin-top:4px;word-break:break-all}
figcaption b{font-variant-numeric:tabular-nums}
.bar{display:flex;align-items:center;gap:4px;font-size:.8em;margin-top:2px}
.bar span.l{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar span.b{width:60px;height:8px;background:#eee;display:inline-block;position:relative}
.bar span.b i{position:absolute;left:0;top:0;bottom:0;background:#4a8}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:4px 6px;font-size:.85em;text-align:right;font-variant-numeric:tabular-nums}
th{max-width:160px;white-space:pre-wrap;word-break:break-word;vertical-align:bottom;text-align:left}
td.img{text-align:left;max-width:180px;word-break:break-all} td.img img{height:72px;display:block}
td.best{font-weight:bold;outline:2px solid #4a8}
</style>
)";

std::string page_start(const std::string& title, const std::string& subtitle) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + html_escape(title) +
         "</title>\n" + kStyle + "</head>\n<body>\n<h1>" + html_escape(title) + "</h1>\n<p class=\"sub\">" +
         html_escape(subtitle) + "</p>\n";
}

std::string thumbnail(const std::string& html_path, const std::string& image) {
  const std::string url = html_escape(image_url(html_path, image));
  return "<a href=\"" + url + "\"><img src=\"" + url + "\" loading=\"lazy\" alt=\"" + html_escape(image) + "\"></a>";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string image_url(const std::string& html_path, const std::string& image) {
  const fs::path target = absolute_path(image);
  const fs::path folder = fs::path(absolute_path(html_path)).parent_path();
  const fs::path relative = target.lexically_relative(folder);
  if (!relative.empty()) return percent_encode(relative.generic_string());
  return "file://" + percent_encode(target.generic_string());
}

std::string render_gallery(const std::string& html_path, const std::string& title, const std::string& subtitle,
                           const std::vector<GallerySection>& sections) {
  std::string out = page_start(title, subtitle);
  for (const auto& section : sections) {
    out += "<section>\n<h2>";
    if (!section.heading_image.empty()) {
      const std::string url = html_escape(image_url(html_path, section.heading_image));
      out += "<img src=\"" + url + "\" alt=\"" + html_escape(section.heading_image) + "\">";
    }
    out += html_escape(section.heading) + "</h2>\n<div class=\"grid\">\n";
    if (section.items.empty()) out += "<p>(no results)</p>\n";
    for (const auto& item : section.items) {
      out += "<figure>" + thumbnail(html_path, item.image) + "<figcaption>";
      if (!item.title.empty()) out += "<b>" + html_escape(item.title) + "</b><br>";
      out += html_escape(item.image);
      for (const auto& [label, value] : item.bars) {
        const double percent = 100.0 * std::fmin(1.0, std::fmax(0.0, value));
        out += "<div class=\"bar\"><span class=\"l\" title=\"" + html_escape(label) + "\">" + html_escape(label) +
               "</span><span class=\"b\"><i style=\"width:" + fixed(percent, 1) + "%\"></i></span>" +
               fixed(percent, 1) + "%</div>";
      }
      out += "</figcaption></figure>\n";
    }
    out += "</div>\n</section>\n";
  }
  out += "</body>\n</html>\n";
  return out;
}

std::string render_matrix(const std::string& html_path, const std::string& title, const std::string& subtitle,
                          const std::vector<std::string>& images, const std::vector<std::string>& texts,
                          const internvl::Matrix& logits) {
  std::string out = page_start(title, subtitle);
  out += "<table>\n<tr><th>image \\ text</th>";
  for (const auto& text : texts) out += "<th>" + html_escape(text) + "</th>";
  out += "</tr>\n";
  std::vector<Eigen::Index> best(texts.size(), -1);
  for (size_t t = 0; t < texts.size() && logits.rows() > 0; ++t) logits.col(static_cast<Eigen::Index>(t)).maxCoeff(&best[t]);
  for (size_t i = 0; i < images.size(); ++i) {
    out += "<tr><td class=\"img\">" + thumbnail(html_path, images[i]) + html_escape(images[i]) + "</td>";
    for (size_t t = 0; t < texts.size(); ++t) {
      const bool is_best = best[t] == static_cast<Eigen::Index>(i);
      out += std::string("<td") + (is_best ? " class=\"best\"" : "") + ">" +
             fixed(logits(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(t)), 3) + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</table>\n<p class=\"sub\">Cells: logits_per_image = exp(logit_scale) &times; cosine similarity; "
         "the best image for each text is outlined.</p>\n</body>\n</html>\n";
  return out;
}

}  // namespace retrieve

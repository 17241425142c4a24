#include "svg.hpp"

#include "nvbox/xml.hpp"

#include <cstdio>

namespace nvbox::bench::svg {

std::string num(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

void text(std::ostream &out, double x, double y, const std::string &s, const char *anchor,
          const char *extra) {
  out << "<text x='" << num(x) << "' y='" << num(y) << "' text-anchor='" << anchor << "' " << extra
      << ">" << nvbox::xmlEscape(s) << "</text>\n";
}

void line(std::ostream &out, double x1, double y1, double x2, double y2, const char *style) {
  out << "<line x1='" << num(x1) << "' y1='" << num(y1) << "' x2='" << num(x2) << "' y2='"
      << num(y2) << "' " << style << "/>\n";
}

void polyline(std::ostream &out, const Points &points, const char *style) {
  out << "<polyline fill='none' " << style << " points='";
  for (const auto &[px, py] : points) {
    out << num(px) << ',' << num(py) << ' ';
  }
  out << "'/>\n";
}

void rect(std::ostream &out, double x, double y, double width, double height, const char *style) {
  out << "<rect x='" << num(x) << "' y='" << num(y) << "' width='" << num(width) << "' height='"
      << num(height) << "' " << style << "/>\n";
}

void markers(std::ostream &out, const Points &points, const char *color, bool square) {
  for (const auto &[px, py] : points) {
    if (square) {
      out << "<rect x='" << num(px - 2.5) << "' y='" << num(py - 2.5)
          << "' width='5' height='5' fill='" << color << "'/>\n";
    } else {
      out << "<circle cx='" << num(px) << "' cy='" << num(py) << "' r='2.8' fill='" << color
          << "'/>\n";
    }
  }
}

} // namespace nvbox::bench::svg

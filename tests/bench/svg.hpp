// svg — the few SVG elements the benchmarks draw their plots with.
//
// What it does: writes one element per call to a stream, numbers with one
// decimal, text escaped. No layout: each benchmark maps its own data to
// pixel coordinates (resequencing_bench, aggregation_bench's buffer curve).
// Threading: pure functions.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace nvbox::bench::svg {

using Points = std::vector<std::pair<double, double>>;

std::string num(double v);
void text(std::ostream &out, double x, double y, const std::string &s,
          const char *anchor = "middle", const char *extra = "");
void line(std::ostream &out, double x1, double y1, double x2, double y2, const char *style);
void polyline(std::ostream &out, const Points &points, const char *style);
void rect(std::ostream &out, double x, double y, double width, double height, const char *style);
// Dots (or squares) of `color` at `points`.
void markers(std::ostream &out, const Points &points, const char *color, bool square);

} // namespace nvbox::bench::svg

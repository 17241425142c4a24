// GoodputPlot — a picture of a stream's goodput over time: the total and
// each path's line, the moments link events took effect as labelled vertical
// lines, axes in seconds and Mbit/s, a legend. `nvbox run --plot` draws what
// the run measured; the data is plain, so the picture can be tested without
// any VM.
//
// One drawing code (cairo) makes both formats: an SVG surface or a PNG image
// surface. cairo writes SVG text as glyph outlines, which nothing can read
// back, so the SVG also says in words what it shows: the title in <title>,
// the axes, lines and events in <desc>, where search and screen readers find
// them.
//
// Threading: plain functions; cairo contexts are never shared.
#pragma once

#include "nvbox/netconfig/fd.hpp"

#include <string>
#include <utility>
#include <vector>

namespace nvbox {

struct PlotSeries {
  std::string name;                              // the legend's text: "total", "via r1"
  std::vector<std::pair<double, double>> points; // (seconds, Mbit/s), by time
};

struct PlotEvent {
  double at = 0;     // seconds
  std::string label; // "r3-egr rate 1 Mbit/s"
};

struct GoodputPlot {
  std::string title;
  std::vector<PlotSeries> series; // the first is the total, drawn heaviest
  std::vector<PlotEvent> events;
};

enum class PlotFormat { Svg, Png };

// The picture's size: pixels in a PNG, points in an SVG.
inline constexpr int kPlotWidth = 1000;
inline constexpr int kPlotHeight = 560;

// Where each text of the picture goes, for drawing and for the tests that
// check that none overlaps another or leaves the picture.
struct PlotText {
  std::string text;
  double x = 0, y = 0, width = 0, height = 0; // the box, y down from the top
};

// .svg or .png, as the file's name ends; throws UsageError naming the file
// when it ends otherwise.
[[nodiscard]] PlotFormat plotFormatOf(const std::string &path);

// Every text the picture has, where it goes.
[[nodiscard]] std::vector<PlotText> plotTexts(const GoodputPlot &plot);

// The bytes of the SVG or PNG file. Throws nvbox::Error when cairo fails.
[[nodiscard]] std::string renderPlot(const GoodputPlot &plot, PlotFormat format);

// A plot file being written: the constructor makes a temporary file beside
// `path` (mkstemp), so an unwritable place is found before a long run;
// write() renders into it and renames it over `path`. A PlotFile destroyed
// unwritten removes its temporary file.
class PlotFile {
public:
  // Throws UsageError when the name ends in neither .svg nor .png, Error
  // when the temporary file cannot be made ("cannot write plot 'x.svg': …").
  explicit PlotFile(std::string path);
  ~PlotFile();
  PlotFile(const PlotFile &) = delete;
  PlotFile &operator=(const PlotFile &) = delete;
  PlotFile(PlotFile &&) = delete;
  PlotFile &operator=(PlotFile &&) = delete;

  void write(const GoodputPlot &plot);
  [[nodiscard]] const std::string &path() const { return path_; }

private:
  std::string path_;
  PlotFormat format_;
  std::string temp_; // empty once renamed into place
  netconfig::Fd fd_;
};

} // namespace nvbox

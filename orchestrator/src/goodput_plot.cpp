#include "nvbox/goodput_plot.hpp"

#include "nvbox/xml.hpp"

#include "nvbox/error.hpp"

#include <cairo-svg.h>
#include <cairo.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <numbers>
#include <optional>
#include <sstream>

namespace nvbox {

namespace {

struct SurfaceDeleter {
  void operator()(cairo_surface_t *s) const { cairo_surface_destroy(s); }
};
using Surface = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
struct ContextDeleter {
  void operator()(cairo_t *c) const { cairo_destroy(c); }
};
using Context = std::unique_ptr<cairo_t, ContextDeleter>;
struct FontOptionsDeleter {
  void operator()(cairo_font_options_t *o) const { cairo_font_options_destroy(o); }
};
using FontOptions = std::unique_ptr<cairo_font_options_t, FontOptionsDeleter>;

constexpr double kWidth = kPlotWidth;
constexpr double kHeight = kPlotHeight;
constexpr const char *kFont = "sans-serif";
constexpr double kTitleSize = 15;
constexpr double kTextSize = 12;
constexpr double kTickSize = 11;
constexpr double kEdge = 12;     // the picture's blank border
constexpr double kRowGap = 4;    // between rows of labels
constexpr double kLabelPad = 6;  // the least space between two labels, or a label and a line
constexpr int kMaxEventRows = 8; // beyond this, a label may cross another event's line

struct Rgb {
  double r, g, b;
};
constexpr Rgb kBlack{0, 0, 0};
// The path lines' colours (Tableau 10 without grey, which the event lines use).
constexpr Rgb kPalette[] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                            {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                            {0.890, 0.467, 0.761}, {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

Rgb colourOf(std::size_t series) {
  return series == 0 ? kBlack : kPalette[(series - 1) % std::size(kPalette)];
}

double lineWidthOf(std::size_t series) {
  return series == 0 ? 2.2 : 1.5;
}

void checkStatus(cairo_status_t status, const std::string &what) {
  if (status != CAIRO_STATUS_SUCCESS) {
    throw Error("cannot draw the plot: " + what + ": " + cairo_status_to_string(status));
  }
}

// Metrics without hinting, so that a text measures the same on the SVG and
// the PNG surface and both get the same layout.
void setUp(cairo_t *cr) {
  const FontOptions options(cairo_font_options_create());
  cairo_font_options_set_hint_metrics(options.get(), CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style(options.get(), CAIRO_HINT_STYLE_NONE);
  cairo_set_font_options(cr, options.get());
}

void useFont(cairo_t *cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

// "5", "2.5", "0.25": as many decimals as the step needs.
std::string tickText(double value, double step) {
  const int decimals = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

// 1, 2 or 5 times a power of ten, near `rough`.
double niceStep(double rough) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  const double f = rough / magnitude;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * magnitude;
}

// A text as laid out: its box, and how to draw it.
struct Text {
  PlotText box;
  double size = kTextSize;
  bool bold = false;
  bool vertical = false; // turned a quarter left, read upwards (the y axis's label)
  double ascent = 0;
};

struct EventMark {
  double x = 0;    // the line
  double yTop = 0; // where the line ends above the plot, beside its label
};

struct LegendSample {
  double x0 = 0, x1 = 0, y = 0;
  std::size_t series = 0;
};

struct Layout {
  double left = 0, right = 0, top = 0, bottom = 0; // the plot area
  double xStep = 1, yStep = 1;                     // between ticks
  int xTicks = 1, yTicks = 1;                      // the axes run from 0 to as many steps
  std::vector<Text> texts;
  std::vector<EventMark> events;
  std::vector<LegendSample> legend;

  [[nodiscard]] double xAt(double seconds) const {
    return left + (right - left) * seconds / (xTicks * xStep);
  }
  [[nodiscard]] double yAt(double mbps) const {
    return bottom - (bottom - top) * mbps / (yTicks * yStep);
  }
  // On a pixel's middle, so that a 1-pixel line is sharp in a PNG.
  [[nodiscard]] double crispX(double seconds) const { return std::round(xAt(seconds)) + 0.5; }
  [[nodiscard]] double crispY(double mbps) const { return std::round(yAt(mbps)) + 0.5; }
};

Text measure(cairo_t *cr, const std::string &text, double size, bool bold = false) {
  useFont(cr, size, bold);
  cairo_font_extents_t font;
  cairo_font_extents(cr, &font);
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  Text t;
  t.box.text = text;
  t.box.width = extents.x_advance;
  t.box.height = font.ascent + font.descent;
  t.size = size;
  t.bold = bold;
  t.ascent = font.ascent;
  return t;
}

Text placed(Text t, double x, double y) {
  t.box.x = x;
  t.box.y = y;
  return t;
}

bool overlaps(double a0, double a1, double b0, double b1) {
  return a0 < b1 && b0 < a1;
}

// Event labels sit in rows above the plot, each beside its line: in the
// first row (row 0 is nearest the plot) where the label neither touches
// another label nor covers a line that runs up through that row, and where
// its own line, on its way up, crosses no label of a lower row. Returns the
// labels with their rows, in the events' order; their x is set, their y is
// not yet. The latest event is placed first: labels go right of their lines,
// so each earlier one climbs over the later ones like a staircase instead of
// covering their lines.
std::vector<std::pair<Text, int>> placeEvents(cairo_t *cr, const GoodputPlot &plot,
                                              const Layout &l) {
  struct Spot {
    int row;
    double x0, x1, line;
  };
  std::vector<Spot> spots;
  std::vector<std::pair<Text, int>> labels(plot.events.size());
  std::vector<std::size_t> order(plot.events.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return plot.events[a].at > plot.events[b].at;
  });
  for (const std::size_t i : order) {
    const PlotEvent &e = plot.events[i];
    const Text t = measure(cr, e.label, kTextSize);
    const double line = l.xAt(e.at);
    const auto fits = [&](int row, double x0, double x1, bool strict) {
      if (strict && (x0 < kEdge || x1 > kWidth - kEdge)) {
        return false;
      }
      for (const auto &p : spots) {
        if (p.row == row && overlaps(x0 - kLabelPad, x1 + kLabelPad, p.x0, p.x1)) {
          return false;
        }
        if (strict && p.row > row && overlaps(x0 - kLabelPad, x1 + kLabelPad, p.line, p.line)) {
          return false;
        }
        if (strict && p.row < row && overlaps(p.x0 - kLabelPad, p.x1 + kLabelPad, line, line)) {
          return false;
        }
      }
      return true;
    };
    const double w = t.box.width;
    const double gap = 4;
    std::optional<Spot> spot;
    for (int row = 0; !spot && row < kMaxEventRows; ++row) {
      for (const double x0 : {line + gap, line - gap - w}) {
        if (fits(row, x0, x0 + w, true)) {
          spot = Spot{row, x0, x0 + w, line};
          break;
        }
      }
    }
    // Crowded: the first row where it touches no label, whatever lines it
    // crosses (a row above all others always does).
    const double inside = std::max(kEdge, std::min(line + gap, kWidth - kEdge - w));
    for (int row = 0; !spot; ++row) {
      if (fits(row, inside, inside + w, false)) {
        spot = Spot{row, inside, inside + w, line};
      }
    }
    spots.push_back(*spot);
    labels[i] = {placed(t, spot->x0, 0), spot->row};
  }
  return labels;
}

Layout layOut(cairo_t *cr, const GoodputPlot &plot) {
  Layout l;
  double xMax = 0, yMax = 0;
  for (const auto &s : plot.series) {
    for (const auto &[x, y] : s.points) {
      if (std::isfinite(x) && std::isfinite(y)) {
        xMax = std::max(xMax, x);
        yMax = std::max(yMax, y);
      }
    }
  }
  for (const auto &e : plot.events) {
    if (std::isfinite(e.at)) {
      xMax = std::max(xMax, e.at);
    }
  }
  // About 10 ticks in time, 5 in goodput, with some room above the highest.
  xMax = std::max(xMax, 1.0);
  yMax = std::max(yMax, 0.1) * 1.05;
  l.xStep = niceStep(xMax / 10);
  l.xTicks = static_cast<int>(std::ceil(xMax / l.xStep - 1e-9));
  l.yStep = niceStep(yMax / 5);
  l.yTicks = static_cast<int>(std::ceil(yMax / l.yStep - 1e-9));

  // Top down: the title, the event labels, the plot; bottom up: the
  // legend, the x axis's label, its ticks.
  Text title = measure(cr, plot.title, kTitleSize, true);
  const double titleBottom = kEdge + title.box.height;
  l.texts.push_back(placed(title, kEdge, kEdge));

  std::vector<Text> yTicks;
  double yTickWidth = 0;
  for (int i = 0; i <= l.yTicks; ++i) {
    yTicks.push_back(measure(cr, tickText(i * l.yStep, l.yStep), kTickSize));
    yTickWidth = std::max(yTickWidth, yTicks.back().box.width);
  }
  Text yLabel = measure(cr, "goodput (Mbit/s)", kTextSize);
  yLabel.vertical = true;
  l.left = kEdge + yLabel.box.height + 10 + yTickWidth + 6;
  l.right = kWidth - kEdge - 14; // half a tick label's room for the last x tick

  // The legend: rows of [line sample, name], wrapped at the plot's width.
  struct Entry {
    Text text;
    double width;
  };
  std::vector<std::vector<Entry>> legendRows(1);
  const double sample = 26, sampleGap = 6, entryGap = 22;
  double rowWidth = 0;
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    Text t = measure(cr, plot.series[i].name, kTextSize);
    const double w = sample + sampleGap + t.box.width;
    if (!legendRows.back().empty() && rowWidth + entryGap + w > l.right - l.left) {
      legendRows.emplace_back();
      rowWidth = 0;
    }
    rowWidth += (legendRows.back().empty() ? 0 : entryGap) + w;
    legendRows.back().push_back({std::move(t), w});
  }
  const double lineHeight = measure(cr, "Mg", kTextSize).box.height;
  const double legendHeight = static_cast<double>(legendRows.size()) * (lineHeight + kRowGap);
  const double tickHeight = measure(cr, "0", kTickSize).box.height;
  // The x ticks' labels start 8 below the axis: clear of the lowest y tick's
  // label, which reaches half its height below it.
  l.bottom = kHeight - kEdge - legendHeight - 8 - lineHeight - 6 - tickHeight - 8;
  double legendY = kHeight - kEdge - legendHeight;
  for (auto &row : legendRows) {
    double x = l.left;
    for (auto &[t, w] : row) {
      const std::size_t series = l.legend.size();
      l.legend.push_back({x, x + sample, legendY + t.box.height / 2, series});
      l.texts.push_back(placed(std::move(t), x + sample + sampleGap, legendY));
      x += w + entryGap;
    }
    legendY += lineHeight + kRowGap;
  }
  Text xLabel = measure(cr, "time (s)", kTextSize);
  l.texts.push_back(
      placed(xLabel, (l.left + l.right - xLabel.box.width) / 2, l.bottom + 8 + tickHeight + 6));

  // The event labels' rows, between the title and the plot.
  const auto labels = placeEvents(cr, plot, l);
  int eventRows = 0;
  for (const auto &[t, row] : labels) {
    eventRows = std::max(eventRows, row + 1);
  }
  const double bandTop = titleBottom + 10;
  const double rowHeight = lineHeight + kRowGap;
  l.top = bandTop + eventRows * rowHeight + 6;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto &[t, row] = labels[i];
    const double y = bandTop + (eventRows - 1 - row) * rowHeight;
    l.events.push_back({l.xAt(plot.events[i].at), y + t.box.height / 2});
    l.texts.push_back(placed(t, t.box.x, y));
  }

  for (std::size_t i = 0; i < yTicks.size(); ++i) {
    const double v = static_cast<double>(i) * l.yStep;
    Text &t = yTicks[i];
    l.texts.push_back(placed(t, l.left - 6 - t.box.width, l.yAt(v) - t.box.height / 2));
  }
  for (int i = 0; i <= l.xTicks; ++i) {
    const double v = i * l.xStep;
    Text t = measure(cr, tickText(v, l.xStep), kTickSize);
    l.texts.push_back(placed(t, l.xAt(v) - t.box.width / 2, l.bottom + 8));
  }
  // Turned, the y label's box is as wide as the text is high.
  const double along = yLabel.box.width;
  yLabel.box.width = yLabel.box.height;
  yLabel.box.height = along;
  l.texts.push_back(placed(yLabel, kEdge, (l.top + l.bottom - along) / 2));
  return l;
}

void setColour(cairo_t *cr, Rgb c) {
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

// Draws the plot; returns how it was laid out.
Layout draw(cairo_t *cr, const GoodputPlot &plot) {
  setUp(cr);
  const Layout l = layOut(cr, plot);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);

  // Grid, then the axes.
  cairo_set_line_width(cr, 1);
  cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
  for (int i = 1; i <= l.yTicks; ++i) {
    cairo_move_to(cr, l.left, l.crispY(i * l.yStep));
    cairo_line_to(cr, l.right, l.crispY(i * l.yStep));
  }
  for (int i = 1; i <= l.xTicks; ++i) {
    cairo_move_to(cr, l.crispX(i * l.xStep), l.top);
    cairo_line_to(cr, l.crispX(i * l.xStep), l.bottom);
  }
  cairo_stroke(cr);
  setColour(cr, kBlack);
  cairo_move_to(cr, std::round(l.left) + 0.5, l.top);
  cairo_line_to(cr, std::round(l.left) + 0.5, std::round(l.bottom) + 0.5);
  cairo_line_to(cr, l.right, std::round(l.bottom) + 0.5);
  for (int i = 0; i <= l.xTicks; ++i) {
    cairo_move_to(cr, l.crispX(i * l.xStep), l.bottom);
    cairo_line_to(cr, l.crispX(i * l.xStep), l.bottom + 4);
  }
  for (int i = 0; i <= l.yTicks; ++i) {
    cairo_move_to(cr, l.left - 4, l.crispY(i * l.yStep));
    cairo_line_to(cr, l.left, l.crispY(i * l.yStep));
  }
  cairo_stroke(cr);

  // Events: dashed grey lines from the x axis up to their labels.
  cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
  const double dashes[] = {4, 3};
  cairo_set_dash(cr, dashes, 2, 0);
  for (const auto &e : l.events) {
    cairo_move_to(cr, std::round(e.x) + 0.5, l.bottom);
    cairo_line_to(cr, std::round(e.x) + 0.5, e.yTop);
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);

  // The series, the total last so that it stays on top.
  cairo_save(cr);
  cairo_rectangle(cr, l.left, l.top - 2, l.right - l.left, l.bottom - l.top + 2);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (std::size_t n = plot.series.size(); n-- > 0;) {
    // A point that is no number (no count of bytes gives one, but cairo
    // would draw it somewhere wild) breaks the line.
    bool drawing = false;
    for (const auto &[x, y] : plot.series[n].points) {
      if (!std::isfinite(x) || !std::isfinite(y)) {
        drawing = false;
      } else if (drawing) {
        cairo_line_to(cr, l.xAt(x), l.yAt(y));
      } else {
        cairo_move_to(cr, l.xAt(x), l.yAt(y));
        drawing = true;
      }
    }
    setColour(cr, colourOf(n));
    cairo_set_line_width(cr, lineWidthOf(n));
    cairo_stroke(cr);
  }
  cairo_restore(cr);

  for (const auto &s : l.legend) {
    cairo_move_to(cr, s.x0, std::round(s.y) + 0.5);
    cairo_line_to(cr, s.x1, std::round(s.y) + 0.5);
    setColour(cr, colourOf(s.series));
    cairo_set_line_width(cr, lineWidthOf(s.series) + 0.8);
    cairo_stroke(cr);
  }

  setColour(cr, kBlack);
  for (const auto &t : l.texts) {
    useFont(cr, t.size, t.bold);
    if (t.vertical) {
      cairo_save(cr);
      cairo_move_to(cr, t.box.x + t.ascent, t.box.y + t.box.height);
      cairo_rotate(cr, -std::numbers::pi / 2);
      cairo_show_text(cr, t.box.text.c_str());
      cairo_restore(cr);
    } else {
      cairo_move_to(cr, t.box.x, t.box.y + t.ascent);
      cairo_show_text(cr, t.box.text.c_str());
    }
  }
  checkStatus(cairo_status(cr), "drawing");
  return l;
}

cairo_status_t append(void *closure, const unsigned char *data, unsigned int length) {
  static_cast<std::string *>(closure)->append(reinterpret_cast<const char *>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// The plot in words: its axes, its lines, its events.
std::string describe(const GoodputPlot &plot, const Layout &l) {
  std::ostringstream out;
  out << "x: time (s), 0 to " << tickText(l.xTicks * l.xStep, l.xStep)
      << "; y: goodput (Mbit/s), 0 to " << tickText(l.yTicks * l.yStep, l.yStep) << "\nlines: ";
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    out << (i > 0 ? ", " : "") << plot.series[i].name;
  }
  out << "\nevents:";
  for (std::size_t i = 0; i < plot.events.size(); ++i) {
    out << (i > 0 ? ";" : "") << " " << plot.events[i].label << " at "
        << tickText(plot.events[i].at, 0.01) << " s";
  }
  return out.str();
}

// Puts the title and the description right after the root element's start
// tag, where SVG wants them.
std::string withDescription(std::string svg, const std::string &title, const std::string &desc) {
  const auto root = svg.find("<svg");
  const auto end = root == std::string::npos ? root : svg.find('>', root);
  if (end == std::string::npos) {
    throw Error("cannot draw the plot: cairo wrote no <svg> element");
  }
  return svg.insert(end + 1, "\n<title>" + xmlEscape(title) + "</title>\n<desc>" + xmlEscape(desc) +
                                 "</desc>");
}

// The permissions a file created now would get (mkstemp makes 0600).
mode_t newFileMode() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Umask:")) {
      return 0666 & ~static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
    }
  }
  return 0644;
}

} // namespace

PlotFormat plotFormatOf(const std::string &path) {
  if (path.ends_with(".svg")) {
    return PlotFormat::Svg;
  }
  if (path.ends_with(".png")) {
    return PlotFormat::Png;
  }
  throw UsageError("plot file '" + path + "' does not end in .svg or .png",
                   "name it e.g. run.svg or run.png");
}

std::vector<PlotText> plotTexts(const GoodputPlot &plot) {
  const Surface surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1));
  const Context cr(cairo_create(surface.get()));
  setUp(cr.get());
  std::vector<PlotText> out;
  for (auto &t : layOut(cr.get(), plot).texts) {
    out.push_back(std::move(t.box));
  }
  return out;
}

std::string renderPlot(const GoodputPlot &plot, PlotFormat format) {
  std::string bytes;
  if (format == PlotFormat::Svg) {
    std::string desc;
    {
      const Surface surface(cairo_svg_surface_create_for_stream(append, &bytes, kWidth, kHeight));
      checkStatus(cairo_surface_status(surface.get()), "SVG surface");
      {
        const Context cr(cairo_create(surface.get()));
        desc = describe(plot, draw(cr.get(), plot));
      }
      cairo_surface_finish(surface.get()); // writes the rest
      checkStatus(cairo_surface_status(surface.get()), "SVG output");
    }
    return withDescription(std::move(bytes), plot.title, desc);
  }
  const Surface surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, kPlotWidth, kPlotHeight));
  checkStatus(cairo_surface_status(surface.get()), "image surface");
  {
    const Context cr(cairo_create(surface.get()));
    (void)draw(cr.get(), plot);
  }
  cairo_surface_flush(surface.get());
  checkStatus(cairo_surface_write_to_png_stream(surface.get(), append, &bytes), "PNG output");
  return bytes;
}

namespace {

netconfig::Fd makeTemp(const std::string &path, std::string &temp) {
  const std::filesystem::path p(path);
  const std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
  // Hidden, and unpredictable: nobody can plant a link where it will be.
  std::string name = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
  netconfig::Fd fd(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd) {
    throw Error(netconfig::sysError("cannot write plot '" + path + "'"),
                "check that its directory exists and is writable");
  }
  temp = std::move(name);
  return fd;
}

} // namespace

PlotFile::PlotFile(std::string path)
    : path_(std::move(path)), format_(plotFormatOf(path_)), fd_(makeTemp(path_, temp_)) {}

PlotFile::~PlotFile() {
  if (!temp_.empty()) {
    ::unlink(temp_.c_str());
  }
}

void PlotFile::write(const GoodputPlot &plot) {
  if (temp_.empty()) {
    throw Error("plot '" + path_ + "' is written already");
  }
  const std::string bytes = renderPlot(plot, format_);
  const auto fail = [&] { throw Error(netconfig::sysError("cannot write plot '" + path_ + "'")); };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno != EINTR) {
      fail();
    }
    done += n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  if (::fchmod(fd_.get(), newFileMode()) != 0 || ::fsync(fd_.get()) != 0 ||
      ::close(fd_.release()) != 0 || ::rename(temp_.c_str(), path_.c_str()) != 0) {
    fail();
  }
  temp_.clear();
}

} // namespace nvbox

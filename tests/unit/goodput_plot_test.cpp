// `nvbox run --plot`: a fixed run drawn to SVG and PNG and read back (the
// SVG's description, the PNG's size and the lines' colours), the layout's
// texts (none overlaps another or leaves the picture, even with events close
// together), the plot file written in place of the old one, and what a run's
// report becomes in the plot and in its JSON.
#include "command_run.hpp"
#include "nvbox/error.hpp"
#include "nvbox/goodput_plot.hpp"
#include "nvbox/overlay_run.hpp"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

namespace nvbox::test {
namespace {

namespace fs = std::filesystem;

// cairo and fontconfig keep fonts in caches for the life of the process;
// freed at the end, so that the sanitizer build's leak check sees only leaks
// of ours.
class FontCaches : public ::testing::Environment {
public:
  void TearDown() override {
    cairo_debug_reset_static_data();
    FcFini();
  }
};
const auto *const kFontCaches = ::testing::AddGlobalTestEnvironment(new FontCaches);

// A 28 s run of examples/cmp.yaml: r1's first link down from 5 s to 12 s,
// r3's second link slowed at 18 s.
GoodputPlot cmpRun() {
  const auto rate = [](const std::string &relay, double t) {
    if (relay == "r1") {
      return t >= 5.3 && t < 12.8 ? 0.0 : 3.7;
    }
    return relay == "r2" ? 2.8 : t >= 18.2 ? 0.9 : 1.85;
  };
  GoodputPlot plot;
  plot.title = "goodput of overlay 'cmp', stripe 'fwd', from 'src' to 'sink'";
  plot.series.push_back({"total (receiver)", {}});
  for (int i = 1; i <= 280; ++i) {
    const double t = i / 10.0;
    plot.series[0].points.emplace_back(t, 0.93 * (rate("r1", t) + rate("r2", t) + rate("r3", t)) +
                                              0.6 * std::sin(i));
  }
  for (const std::string relay : {"r1", "r2", "r3"}) {
    PlotSeries s{"via " + relay, {}};
    for (int i = 1; i <= 90; ++i) {
      const double t = i * 0.31;
      s.points.emplace_back(t, rate(relay, t) + 0.2 * std::cos(i));
    }
    plot.series.push_back(std::move(s));
  }
  plot.events = {{5.02, "ing-r1 down"}, {12.01, "ing-r1 up"}, {18.03, "r3-egr rate 1 Mbit/s"}};
  return plot;
}

std::size_t count(const std::string &text, const std::string &what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

TEST(GoodputPlot, TheFormatFollowsTheExtension) {
  EXPECT_EQ(plotFormatOf("run.svg"), PlotFormat::Svg);
  EXPECT_EQ(plotFormatOf("/tmp/a.b/run.png"), PlotFormat::Png);
  for (const std::string bad : {"run.gif", "run.svg.txt", "svg", "run.SVG", ""}) {
    try {
      (void)plotFormatOf(bad);
      ADD_FAILURE() << bad;
    } catch (const UsageError &e) {
      EXPECT_EQ(std::string(e.what()), "plot file '" + bad + "' does not end in .svg or .png");
    }
  }
}

TEST(GoodputPlot, SvgSaysWhatItShowsAndDrawsEveryText) {
  const GoodputPlot plot = cmpRun();
  const std::string svg = renderPlot(plot, PlotFormat::Svg);
  ASSERT_EQ(svg.rfind("<?xml", 0), 0U) << svg.substr(0, 200);
  EXPECT_NE(svg.find("width=\"1000pt\" height=\"560pt\""), std::string::npos);
  EXPECT_NE(svg.find("<title>goodput of overlay &apos;cmp&apos;, stripe &apos;fwd&apos;, from "
                     "&apos;src&apos; to &apos;sink&apos;</title>"),
            std::string::npos);
  const auto from = svg.find("<desc>");
  const auto to = svg.find("</desc>");
  ASSERT_LT(from, to);
  EXPECT_EQ(svg.substr(from + 6, to - from - 6),
            "x: time (s), 0 to 28; y: goodput (Mbit/s), 0 to 10\n"
            "lines: total (receiver), via r1, via r2, via r3\n"
            "events: ing-r1 down at 5.02 s; ing-r1 up at 12.01 s; r3-egr rate 1 Mbit/s at 18.03 s");
  // cairo draws each character (a space too) as a glyph outline: as many as
  // the texts have.
  std::size_t characters = 0;
  for (const auto &t : plotTexts(plot)) {
    characters += t.text.size();
  }
  EXPECT_EQ(count(svg, "<use xlink:href=\"#glyph"), characters);
  // Four lines in their colours, one black, three of the palette.
  for (const char *colour : {"rgb(0%,0%,0%)", "rgb(12.2%,46.7%,70.6%)", "rgb(100%,49.8%,5.5%)",
                             "rgb(17.3%,62.7%,17.3%)"}) {
    EXPECT_NE(svg.find(std::string("stroke:") + colour), std::string::npos) << colour;
  }
}

TEST(GoodputPlot, SvgEscapesWhatItQuotes) {
  GoodputPlot plot = cmpRun();
  plot.title = "a <b> & c";
  plot.events = {{1, "x<y"}};
  const std::string svg = renderPlot(plot, PlotFormat::Svg);
  EXPECT_NE(svg.find("<title>a &lt;b&gt; &amp; c</title>"), std::string::npos);
  EXPECT_NE(svg.find("events: x&lt;y at 1.00 s</desc>"), std::string::npos);
}

TEST(GoodputPlot, APointThatIsNoNumberBreaksItsLine) {
  GoodputPlot plot = cmpRun();
  plot.series[1].points[10].second = std::nan("");
  plot.series[2].points[3].first = std::numeric_limits<double>::infinity();
  EXPECT_NO_THROW((void)renderPlot(plot, PlotFormat::Png));
  // The axes span the numbers only.
  const std::string svg = renderPlot(plot, PlotFormat::Svg);
  EXPECT_NE(svg.find("0 to 28; y: goodput (Mbit/s), 0 to 10"), std::string::npos);
}

struct Png {
  std::string bytes;
  std::size_t read = 0;
};

cairo_status_t readPng(void *closure, unsigned char *data, unsigned int length) {
  auto *png = static_cast<Png *>(closure);
  if (png->bytes.size() - png->read < length) {
    return CAIRO_STATUS_READ_ERROR;
  }
  std::copy_n(png->bytes.data() + png->read, length, data);
  png->read += length;
  return CAIRO_STATUS_SUCCESS;
}

struct SurfaceDeleter {
  void operator()(cairo_surface_t *s) const { cairo_surface_destroy(s); }
};

TEST(GoodputPlot, PngIsThePictureAtItsSizeWithEveryLine) {
  Png png{renderPlot(cmpRun(), PlotFormat::Png)};
  ASSERT_EQ(png.bytes.rfind("\x89PNG", 0), 0U);
  const std::unique_ptr<cairo_surface_t, SurfaceDeleter> image(
      cairo_image_surface_create_from_png_stream(readPng, &png));
  ASSERT_EQ(cairo_surface_status(image.get()), CAIRO_STATUS_SUCCESS);
  ASSERT_EQ(cairo_image_surface_get_width(image.get()), kPlotWidth);
  ASSERT_EQ(cairo_image_surface_get_height(image.get()), kPlotHeight);
  // Pixels of each line's colour (the lines and their legend samples).
  const auto pixels = [&](std::uint32_t rgb) {
    const unsigned char *data = cairo_image_surface_get_data(image.get());
    const int stride = cairo_image_surface_get_stride(image.get());
    std::size_t n = 0;
    for (int y = 0; y < kPlotHeight; ++y) {
      const auto *row = reinterpret_cast<const std::uint32_t *>(data + y * stride);
      for (int x = 0; x < kPlotWidth; ++x) {
        n += (row[x] & 0xFFFFFFU) == rgb ? 1 : 0;
      }
    }
    return n;
  };
  EXPECT_GT(pixels(0xFFFFFF), 300000U) << "a white background";
  EXPECT_GT(pixels(0x000000), 2000U) << "the total, the axes, the texts";
  for (const std::uint32_t colour : {0x1F77B4U, 0xFF7F0EU, 0x2CA02CU}) {
    EXPECT_GT(pixels(colour), 100U) << std::hex << colour;
  }
  EXPECT_EQ(pixels(0xD62728), 0U) << "no fourth path";
}

void expectTidy(const GoodputPlot &plot) {
  const auto texts = plotTexts(plot);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const PlotText &a = texts[i];
    EXPECT_GE(a.x, 0) << a.text;
    EXPECT_GE(a.y, 0) << a.text;
    EXPECT_LE(a.x + a.width, kPlotWidth) << a.text;
    EXPECT_LE(a.y + a.height, kPlotHeight) << a.text;
    for (std::size_t j = i + 1; j < texts.size(); ++j) {
      const PlotText &b = texts[j];
      const bool apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y ||
                         b.y + b.height <= a.y;
      EXPECT_TRUE(apart) << "'" << a.text << "' overlaps '" << b.text << "'";
    }
  }
}

TEST(GoodputPlot, NoTextOverlapsAnotherOrLeavesThePicture) {
  GoodputPlot plot = cmpRun();
  const auto texts = plotTexts(plot);
  for (const std::string expected :
       {"total (receiver)", "via r1", "via r2", "via r3", "ing-r1 down", "ing-r1 up",
        "r3-egr rate 1 Mbit/s", "time (s)", "goodput (Mbit/s)", "0", "28", "12"}) {
    EXPECT_TRUE(std::any_of(texts.begin(), texts.end(), [&](const PlotText &t) {
      return t.text == expected;
    })) << expected;
  }
  expectTidy(plot);
  // Events a fraction of a second apart, one at the right edge, long labels.
  plot.events.push_back({5.1, "r2-egr delay 20 ms, jitter 5 ms, loss 1 %"});
  plot.events.push_back({5.3, "ing-r2 down"});
  plot.events.push_back({27.9, "ing-r3 rate 500 kbit/s"});
  plot.events.push_back({0, "ing-r3 up"});
  expectTidy(plot);
  // More lines than one legend row holds.
  for (int i = 4; i < 16; ++i) {
    plot.series.push_back({"via relay-number-" + std::to_string(i), {{1, i}, {2, i}}});
  }
  expectTidy(plot);
  // Nothing at all.
  expectTidy(GoodputPlot{});
}

class PlotFileTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string name = (fs::temp_directory_path() / "nvbox-plot-XXXXXX").string();
    ASSERT_NE(::mkdtemp(name.data()), nullptr);
    dir_ = name;
  }
  void TearDown() override { fs::remove_all(dir_); }
  [[nodiscard]] std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto &e : fs::directory_iterator(dir_)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }
  fs::path dir_;
};

TEST_F(PlotFileTest, ReplacesTheFileAndLeavesNothingElse) {
  const std::string path = (dir_ / "run.svg").string();
  std::ofstream(path) << "old";
  {
    PlotFile file(path);
    EXPECT_EQ(files().size(), 2U) << "the temporary file beside it";
    file.write(cmpRun());
  }
  EXPECT_EQ(files(), std::vector<std::string>{"run.svg"});
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().rfind("<?xml", 0), 0U);
  EXPECT_NE(text.str().find("<desc>x: time (s), 0 to 28;"), std::string::npos);
  EXPECT_NE(text.str().find("</svg>"), std::string::npos);
  // The permissions any new file gets, not mkstemp's 0600.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(fs::status(path).permissions(), static_cast<fs::perms>(0666 & ~mask) & fs::perms::all);
}

TEST_F(PlotFileTest, AFileNotWrittenLeavesNothing) {
  { PlotFile file((dir_ / "run.png").string()); }
  EXPECT_EQ(files(), std::vector<std::string>{});
}

TEST_F(PlotFileTest, AnUnwritablePlaceFailsAtOnceNamingTheFile) {
  const std::string path = (dir_ / "missing" / "run.png").string();
  try {
    PlotFile file(path);
    FAIL() << "expected an error";
  } catch (const UsageError &e) {
    FAIL() << e.what();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "cannot write plot '" + path + "': No such file or directory");
  }
  // A directory where the file should go: found when renaming.
  fs::create_directory(dir_ / "taken.svg");
  PlotFile file((dir_ / "taken.svg").string());
  try {
    file.write(cmpRun());
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot write plot '" + (dir_ / "taken.svg").string() + "': Is a directory");
  }
}

OverlayRunReport cmpReport() {
  OverlayRunReport r;
  r.overlay = "cmp";
  r.stripe = "fwd";
  r.from = "src";
  r.to = "sink";
  r.started = "2025-01-02T03:04:05Z";
  r.goodput = {{0.1, 8.5}, {0.2, 7.5}};
  r.pathRates = {{"r1", {{0.26, 500000}, {0.52, 437500}}}, {"r2", {{0.26, 0}}}};
  RunEvent e;
  e.atMs = 18000;
  e.link = "r3-egr";
  e.change = "rate 1 Mbit/s";
  e.applied = 18.03;
  r.events.push_back(e);
  return r;
}

TEST(RunPlot, ShowsTheReceiverThePathsByRelayAndTheEvents) {
  const GoodputPlot plot = cli::runPlot(cmpReport());
  EXPECT_EQ(plot.title,
            "goodput of overlay 'cmp', stripe 'fwd', from 'src' to 'sink' (2025-01-02T03:04:05Z)");
  ASSERT_EQ(plot.series.size(), 3U);
  EXPECT_EQ(plot.series[0].name, "total (receiver, over 0.5 s)");
  EXPECT_EQ(plot.series[0].points,
            (std::vector<std::pair<double, double>>{{0.1, 7.5}, {0.2, 7.5}}));
  EXPECT_EQ(plot.series[1].name, "via r1");
  EXPECT_EQ(plot.series[1].points,
            (std::vector<std::pair<double, double>>{{0.26, 4}, {0.52, 3.5}}));
  EXPECT_EQ(plot.series[2].name, "via r2");
  ASSERT_EQ(plot.events.size(), 1U);
  EXPECT_EQ(plot.events[0].at, 18.03);
  EXPECT_EQ(plot.events[0].label, "r3-egr rate 1 Mbit/s");
}

TEST(RunPlot, TheTotalIsTheRateOverHalfASecondEveryTenth) {
  OverlayRunReport r = cmpReport();
  // 100 ms samples alternating 0 and 10 Mbit/s up to 2 s, then a stall:
  // 400 ms at 2 Mbit/s on average, then 100 ms at 12.
  r.goodput.clear();
  for (int i = 1; i <= 20; ++i) {
    r.goodput.emplace_back(i / 10.0, i % 2 == 0 ? 10.0 : 0.0);
  }
  r.goodput.emplace_back(2.4, 2.0);
  r.goodput.emplace_back(2.5, 12.0);
  const auto total = cli::runPlot(r).series[0].points;
  ASSERT_EQ(total.size(), 25U);
  for (std::size_t k = 0; k < total.size(); ++k) {
    EXPECT_NEAR(total[k].first, 0.1 + 0.1 * static_cast<double>(k), 1e-9);
  }
  // 0.75 to 1.25 s: half of the 0.7-0.8 s sample and five more, 2.5 Mbit.
  EXPECT_NEAR(total[9].second, 5.0, 1e-9);
  // The stall counts as what it delivered, evenly: 1.95 to 2.45 s.
  EXPECT_NEAR(total[21].second, (0.5 + 0.8 + 0.6) / 0.5, 1e-9);
  // At the ends, the half window there is.
  EXPECT_NEAR(total.front().second, 1.5 / 0.25, 1e-9);
  EXPECT_NEAR(total.back().second, (0.3 + 1.2) / 0.25, 1e-9);
}

TEST(RunPlot, JsonCarriesThePathSeriesAndTheSummaryDoesNot) {
  const OverlayRunReport r = cmpReport();
  const auto j = r.toJson();
  EXPECT_EQ(j["path_rates"], nlohmann::json::parse(R"({"r1": [[0.26, 500000.0], [0.52, 437500.0]],
                                      "r2": [[0.26, 0.0]]})"));
  EXPECT_EQ(j["goodput"], nlohmann::json::parse("[[0.1, 8.5], [0.2, 7.5]]"));
  EXPECT_FALSE(r.summary().contains("path_rates"));
  EXPECT_FALSE(r.summary().contains("goodput"));
}

} // namespace
} // namespace nvbox::test

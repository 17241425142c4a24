#include "command_run.hpp"

#include "format.hpp"
#include "nvbox/error.hpp"
#include "nvbox/topology.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <ostream>

namespace nvbox::cli {

namespace po = boost::program_options;
using Json = nlohmann::json;

std::string RunCommand::synopsis() const {
  return "run FILE [--from ENDPOINT] [--to ENDPOINT] [--tail SECONDS] [--csv FILE]\n"
         "       [--plot FILE.svg|FILE.png] [--json]";
}

std::string RunCommand::description() const {
  return "Plays the link events the topology FILE schedules (its 'events') against the\n"
         "overlay deployed from it, while a TCP stream of pseudo-random bytes runs from\n"
         "--from to --to (default: the endpoints at the first stripe's ingress and egress)\n"
         "until --tail seconds (default 10) after the last event. Each event is applied on\n"
         "time: a rate on the host taps, delay, jitter and loss in the routers, a link's\n"
         "state through libvirt. Then every link an event touched is put back as planned,\n"
         "and it prints what the stripe did: goodput and each path's share between events,\n"
         "which paths osrd took out of the stripe or put back and how long after the event,\n"
         "and the stream's longest stall. The ingress router keeps the summary, which\n"
         "'nvbox inspect' shows. --csv writes the goodput every 100 ms. --plot draws the\n"
         "goodput over time, in all and per path (the ingress osrd's byte counters every\n"
         "250 ms), with the events as labelled lines: SVG or PNG, as FILE ends.";
}

void RunCommand::addOptions(po::options_description &options,
                            po::positional_options_description &positional) {
  OverlayCommand::addOptions(options, positional);
  options.add_options()("from", po::value<std::string>(&from_)->value_name("ENDPOINT"),
                        "the sending endpoint")(
      "to", po::value<std::string>(&to_)->value_name("ENDPOINT"),
      "the receiving endpoint")("tail", po::value<double>(&tail_)->value_name("SECONDS"),
                                "how long the stream runs after the last event (default 10)")(
      "csv", po::value<std::string>(&csv_)->value_name("FILE"),
      "write the goodput series (seconds, Mbit/s) to FILE")(
      "plot", po::value<std::string>(&plot_)->value_name("FILE"),
      "draw the goodput over time to FILE (.svg or .png)");
}

void RunCommand::validate(const po::variables_map &vm) {
  OverlayCommand::validate(vm);
  if (!std::isfinite(tail_) || tail_ < 1 || tail_ > 3600) {
    throw UsageError("--tail must be 1 to 3600 seconds, not " + formatFixed(tail_, 1),
                     "see 'nvbox run --help'");
  }
  if (!plot_.empty()) {
    (void)plotFormatOf(plot_);
  }
}

void printRunSummary(std::ostream &out, const Json &s) {
  out << "run of " << s.value("started", "") << ": " << formatFixed(s.value("seconds", 0.0), 1)
      << " s of TCP from " << quote(s.value("from", "")) << " to " << quote(s.value("to", ""))
      << " over stripe " << quote(s.value("stripe", "")) << ", "
      << formatMiB(s.value("bytes", std::uint64_t{0})) << " at " << formatMbps(s.value("mbps", 0.0))
      << ", " << (s.value("identical", false) ? "byte-identical" : "NOT identical") << "\n";
  std::vector<std::string> relays;
  const Json windows = s.value("windows", Json::array());
  for (const auto &w : windows) {
    const Json paths = w.value("paths_mbps", Json::object());
    for (const auto &[relay, v] : paths.items()) {
      if (std::find(relays.begin(), relays.end(), relay) == relays.end()) {
        relays.push_back(relay);
      }
    }
  }
  std::vector<std::vector<std::string>> rows{{"WINDOW", "SECONDS", "GOODPUT"}};
  for (const auto &r : relays) {
    rows[0].push_back("VIA " + r);
  }
  for (const auto &w : windows) {
    std::vector<std::string> row{w.value("label", ""),
                                 formatFixed(w.value("from_s", 0.0), 1) + "-" +
                                     formatFixed(w.value("to_s", 0.0), 1),
                                 formatMbps(w.value("mbps", 0.0))};
    for (const auto &r : relays) {
      row.push_back(formatFixed(w["paths_mbps"].value(r, 0.0), 2));
    }
    rows.push_back(std::move(row));
  }
  printTable(out, rows, "  ");
  const Json events = s.value("events", Json::array());
  for (const auto &e : events) {
    out << "  t=" << formatFixed(static_cast<double>(e.value("at_ms", 0)) / 1000, 1) << " s link "
        << quote(e.value("link", "")) << " " << e.value("change", "") << ": applied at "
        << formatFixed(e.value("applied_s", 0.0), 2) << " s (took "
        << formatFixed(e.value("apply_took_s", 0.0), 2) << " s)";
    const Json paths = e.value("paths", Json::array());
    for (const auto &p : paths) {
      out << "; path via " << p.value("relay", "")
          << (p.value("up", false) ? " back in the stripe " : " out of the stripe ")
          << formatFixed(p.value("after_s", 0.0), 2) << " s later";
    }
    out << "; longest stall " << formatFixed(e.value("stall_s", 0.0), 2) << " s\n";
  }
}

namespace {

// The receiver notes its goodput about every 100 ms, but only when data
// arrives: a stream through busy guests comes in bursts, and a stall leaves
// no sample, only a low one when it ends. Drawn as it is, that hides the
// paths' lines and draws a stall as a ramp. So the total is drawn as the
// bits received in half a second (two of the ingress's polls) around each
// tenth of a second.
constexpr double kTotalWindow = 0.5;
constexpr double kTotalStep = 0.1;

// `rates` (seconds, Mbit/s since the sample before) as the rate over
// `window` around every `step`, from the bits received by then, which grow
// evenly between two samples.
std::vector<std::pair<double, double>> windowed(const std::vector<std::pair<double, double>> &rates,
                                                double window, double step) {
  if (rates.size() < 2) {
    return rates;
  }
  std::vector<std::pair<double, double>> bits{{rates[0].first, 0}}; // the first has no "before"
  for (std::size_t i = 1; i < rates.size(); ++i) {
    bits.emplace_back(rates[i].first,
                      bits.back().second + rates[i].second * (rates[i].first - rates[i - 1].first));
  }
  const auto at = [&](double t) {
    const auto after = std::upper_bound(bits.begin(), bits.end(), t,
                                        [](double v, const auto &b) { return v < b.first; });
    if (after == bits.begin() || after == bits.end()) {
      return after == bits.end() ? bits.back().second : bits.front().second;
    }
    const auto &[t0, b0] = *(after - 1);
    const auto &[t1, b1] = *after;
    return b0 + (b1 - b0) * (t - t0) / (t1 - t0);
  };
  const double first = bits.front().first;
  const double last = bits.back().first;
  std::vector<std::pair<double, double>> out;
  for (int k = 0; first + k * step <= last + 1e-9; ++k) {
    const double t = first + k * step;
    const double from = std::max(first, t - window / 2);
    const double to = std::min(last, t + window / 2);
    out.emplace_back(t, to > from ? (at(to) - at(from)) / (to - from) : 0);
  }
  return out;
}

} // namespace

GoodputPlot runPlot(const OverlayRunReport &report) {
  GoodputPlot plot;
  plot.title = "goodput of overlay " + quote(report.overlay) + ", stripe " + quote(report.stripe) +
               ", from " + quote(report.from) + " to " + quote(report.to) + " (" + report.started +
               ")";
  plot.series.push_back({"total (receiver, over " + formatFixed(kTotalWindow, 1) + " s)",
                         windowed(report.goodput, kTotalWindow, kTotalStep)});
  for (const auto &[relay, rates] : report.pathRates) {
    PlotSeries s{"via " + relay, {}};
    for (const auto &[at, bytesPerSecond] : rates) {
      s.points.emplace_back(at, bytesPerSecond * 8 / 1e6);
    }
    plot.series.push_back(std::move(s));
  }
  for (const auto &e : report.events) {
    plot.events.push_back({e.applied, e.link + " " + e.change});
  }
  return plot;
}

int RunCommand::run(Terminal &term) {
  const OverlayTarget t = target();
  if (!t.plan) {
    throw UsageError("nvbox run: give the topology FILE, not the overlay's name: the events "
                     "are in the file",
                     "see 'nvbox run --help'");
  }
  RunOptions options;
  options.from = from_;
  options.to = to_;
  options.tail = std::chrono::milliseconds(static_cast<long>(tail_ * 1000));
  const auto log = [&](const std::string &line) {
    if (!json()) {
      term.out() << line << "\n" << std::flush;
    }
  };
  // Made before the run, so that a place it cannot be written fails at once.
  std::optional<PlotFile> plot;
  if (!plot_.empty()) {
    plot.emplace(plot_);
  }
  const OverlayRunReport report = runOverlay(*t.plan, options, log);
  if (plot) {
    plot->write(runPlot(report));
    log("wrote plot " + plot_);
  }
  if (!csv_.empty()) {
    std::ofstream csv(csv_);
    csv << "seconds,mbps\n";
    for (const auto &[at, mbit] : report.goodput) {
      csv << formatFixed(at, 3) << "," << formatFixed(mbit, 3) << "\n";
    }
    if (!csv) {
      throw Error("cannot write " + quote(csv_));
    }
  }
  if (json()) {
    Json j = report.toJson();
    if (plot) {
      j["plot"] = plot_;
    }
    term.out() << j.dump(2) << "\n";
  } else {
    term.out() << "\n";
    printRunSummary(term.out(), report.summary());
  }
  if (!report.identical) {
    throw Error("the stream arrived damaged: " + std::to_string(report.bytes) +
                " bytes received do not match what was sent");
  }
  return 0;
}

} // namespace nvbox::cli

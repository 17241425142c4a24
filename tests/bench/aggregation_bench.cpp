// aggregation_bench — how much of k overlay paths one striped TCP stream gets.
//
//   aggregation_bench [DIR [FILTER]]   (writes DIR/aggregation.csv,
//                                       DIR/buffer_curve.{csv,svg},
//                                       DIR/rate_change{,_timeline}.csv,
//                                       DIR/rate_change.svg, DIR/path_cut.csv;
//                                       FILTER: run only the scenarios whose
//                                       name contains it)
//
// Lab (StripeLab, tests/support): src ─ ing ═ r1..rk ═ egr ─ sink in network
// namespaces; the ing→ri and egr→ri veths are shaped with tbf (rate_i); relay
// i may add a one-way delay with osrd's userspace delay stage (--relay-delay;
// the host has no netem). Unless a row says otherwise the stripes name no
// scheduler and declare no rates: osrd's default has to cope on its own.
// Figure: aggregation efficiency = TCP goodput / sum of path rates, median of
// 3 transfers, for
//   equal-k      k = 1..4 paths of 16 Mbit/s
//   unequal      32+16 and 32+16+8 Mbit/s; 32+16+8 once more with scheduler
//                weighted and the rates declared (the paper's baseline)
//   unknown      40+10 Mbit/s
//   delay        2 × 24 Mbit/s, relay delays 5 and 30 ms, re-sequencing buffer
//                sized automatically; once more weighted with the rates
//                declared, and that with the egress's playout off
//                (--playout false), its baseline
//   buffer-curve the delay lab, weighted, for a fixed re-sequencing buffer of
//                N = 8 .. 512 parts and then auto: goodput and part loss of a
//                3 s TCP stream per N (osrd benchmark 2 on real paths, beside
//                resequencing_bench's open-loop simulation), next to the
//                model's smallest lossless N = R × D / S + 2k
//   rate-change  40+20 Mbit/s; one 30 s stream during which path 2 drops to
//                5 Mbit/s (10 s) and comes back (20 s): goodput per phase /
//                that phase's sum of rates, and the stream over time (plot)
//   path-cut     3 × 16 Mbit/s; one 12 s stream during which path 2 dies
//                silently (4 s) and comes back (8 s): how long until osrd
//                takes it out and back in, the stream's longest stall, and
//                goodput after the cut / sum of the remaining paths
// Baseline in the same run and lab: one Linux MPTCP connection whose subflows
// take the same shaped paths (policy routing by source address through the
// relays, kernel forwarding, MPTCP's default scheduler). In the delay rows the
// relays delay MPTCP's packets too, by the same amount and at the same place
// as osrd's relay delay (KernelPathDelay).
#include "process.hpp"
#include "stripe_lab.hpp"
#include "transfer.hpp"

#include "bench_stats.hpp"
#include "svg.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

namespace {

using nvbox::test::ActionSchedule;
using nvbox::test::median;
using nvbox::test::StripeLab;
using Scenario = nvbox::test::StripeScenario;
using Clock = std::chrono::steady_clock;
using Selected = std::function<bool(const std::string &)>;
using namespace std::chrono_literals;

constexpr int kRuns = 3;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// `s` seconds after `t`.
Clock::time_point plus(Clock::time_point t, double s) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// "12.3", or "-" for a figure that does not exist (NaN).
std::string fixed(double v, int decimals) {
  if (std::isnan(v)) {
    return "-";
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

// The median of the figures that exist; NaN when none does.
double medianOfSome(const std::vector<double> &v) {
  std::vector<double> some;
  std::copy_if(v.begin(), v.end(), std::back_inserter(some),
               [](double x) { return !std::isnan(x); });
  return some.empty() ? std::numeric_limits<double>::quiet_NaN() : median(some);
}

// --- aggregation -----------------------------------------------------------

// NVBOX_BENCH_QUICK=1 (CI sizes, scripts/test.sh) leaves out the rows that
// another one brackets: k = 3 (between 2 and 4), the weighted 32+16+8 (the
// same paths as the adaptive row) and the playout ablation.
std::vector<Scenario> aggregationScenarios() {
  std::vector<Scenario> scenarios;
  for (std::uint64_t k = 1; k <= 4; ++k) {
    scenarios.push_back({"equal-k" + std::to_string(k), std::vector<std::uint64_t>(k, 16)});
  }
  scenarios.push_back({"unequal-32+16", {32, 16}});
  scenarios.push_back({"unequal-32+16+8", {32, 16, 8}});
  scenarios.push_back({"unequal-32+16+8-weighted", {32, 16, 8}, {}, "weighted", true});
  scenarios.push_back({"unknown-40+10", {40, 10}});
  scenarios.push_back({"delay-5/30ms", {24, 24}, {5, 30}});
  scenarios.push_back({"delay-5/30ms-weighted", {24, 24}, {5, 30}, "weighted", true});
  scenarios.push_back(
      {"delay-5/30ms-weighted-noplayout", {24, 24}, {5, 30}, "weighted", true, false});
  if (nvbox::test::quickBench()) {
    std::erase_if(scenarios, [](const Scenario &s) {
      return s.name == "equal-k3" || s.name == "unequal-32+16+8-weighted" ||
             s.name == "delay-5/30ms-weighted-noplayout";
    });
  }
  return scenarios;
}

// Each selected scenario: its own lab, 3 transfers of about 3 s of the
// aggregate rate through osrd and over MPTCP, alternating.
void aggregation(const std::filesystem::path &dir, const Selected &selected) {
  std::vector<Scenario> scenarios = aggregationScenarios();
  std::erase_if(scenarios, [&](const Scenario &s) { return !selected(s.name); });
  if (scenarios.empty()) {
    return; // leaves an earlier run's CSV alone
  }
  std::ofstream csv(dir / "aggregation.csv");
  csv << "scenario,paths,sum_mbit,run,osrd_mbit,osrd_efficiency,mptcp_mbit,mptcp_efficiency,"
         "buffer_n,reordered,lost_overflow,lost_timeout,too_old\n";
  std::printf("%-32s %8s %12s %10s %12s %10s %8s\n", "scenario", "sum_Mb/s", "osrd_Mb/s",
              "osrd_eff", "mptcp_Mb/s", "mptcp_eff", "N");
  for (const auto &s : scenarios) {
    const double sum = s.sumMbit();
    const auto bytes = static_cast<std::size_t>(sum * 1e6 / 8 * 3);
    StripeLab lab(s);
    std::vector<double> osrd;
    std::vector<double> mptcp;
    for (int run = 0; run < kRuns; ++run) {
      nvbox::test::throwIfInterrupted();
      osrd.push_back(lab.goodput(false, bytes));
      mptcp.push_back(lab.goodput(true, bytes));
      const auto flow = lab.egressFlow();
      csv << s.name << "," << s.mbit.size() << "," << sum << "," << run << "," << osrd.back() << ","
          << osrd.back() / sum << "," << mptcp.back() << "," << mptcp.back() / sum << ","
          << flow["buffer"] << "," << flow["reordered"] << "," << flow["lost_overflow"] << ","
          << flow["lost_timeout"] << "," << flow["too_old"] << "\n";
    }
    const double o = median(osrd);
    const double m = median(mptcp);
    std::printf("%-32s %8.0f %12.1f %10.3f %12.1f %10.3f %8s\n", s.name.c_str(), sum, o, o / sum, m,
                m / sum, lab.egressFlow()["buffer"].dump().c_str());
    if (const std::string held = lab.kernelDelays(); !held.empty()) {
      std::printf("  MPTCP's packets held by the relays' delay stage: %s\n", held.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("efficiency = goodput / sum of path rates; medians of %d transfers; csv: %s\n", kRuns,
              (dir / "aggregation.csv").c_str());
}

// --- buffer curve ----------------------------------------------------------

struct CurvePoint {
  std::size_t n = 0;
  bool automatic = false;
  double mbit = 0;
  std::uint64_t parts = 0; // sequence numbers the egress accounted for
  std::uint64_t overflow = 0;
  std::uint64_t timeout = 0;
  double loss() const {
    return parts == 0 ? 0 : static_cast<double>(overflow + timeout) / static_cast<double>(parts);
  }
};

// The plot: efficiency and part loss against log2 N, the model's N marked.
void writeCurveSvg(const std::filesystem::path &path, const std::vector<CurvePoint> &points,
                   double sum, double modelN) {
  namespace svg = nvbox::bench::svg;
  constexpr double kLeft = 70, kTop = 50, kWidth = 560, kHeight = 300;
  const double xMin = 3, xMax = 9.5; // N = 8 .. ~724
  const auto x = [&](double n) { return kLeft + kWidth * (std::log2(n) - xMin) / (xMax - xMin); };
  const auto y = [&](double f) { return kTop + kHeight * (1 - std::clamp(f, 0.0, 1.0)); };
  std::ofstream out(path);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='700' height='420' "
         "font-family='sans-serif' font-size='12'>\n<rect width='700' height='420' "
         "fill='white'/>\n";
  svg::text(out, kLeft + kWidth / 2, 28,
            "2 x 24 Mbit/s, one-way delays 5 and 30 ms, weighted: one TCP stream per N", "middle",
            "font-weight='bold'");
  for (int k = 3; k <= 9; ++k) {
    const double gx = x(std::exp2(k));
    svg::line(out, gx, kTop, gx, kTop + kHeight, "stroke='#e4e4e4'");
    svg::text(out, gx, kTop + kHeight + 16, std::to_string(1 << k));
  }
  for (int k = 0; k <= 4; ++k) {
    const double gy = y(k / 4.0);
    svg::line(out, kLeft, gy, kLeft + kWidth, gy, "stroke='#e4e4e4'");
    svg::text(out, kLeft - 6, gy + 4, svg::num(k / 4.0), "end");
  }
  svg::text(out, kLeft + kWidth / 2, kTop + kHeight + 36,
            "re-sequencing buffer N (parts, log scale)");
  svg::line(out, x(modelN), kTop, x(modelN), kTop + kHeight,
            "stroke='#2ca02c' stroke-dasharray='5,4'");
  svg::text(out, x(modelN) + 4, kTop + 14, "model: R x D / S + 2k = " + svg::num(modelN), "start",
            "fill='#2ca02c'");
  svg::Points efficiency;
  svg::Points loss;
  for (const CurvePoint &p : points) {
    if (!p.automatic) {
      efficiency.emplace_back(x(static_cast<double>(p.n)), y(p.mbit / sum));
      loss.emplace_back(x(static_cast<double>(p.n)), y(p.loss()));
    }
  }
  svg::polyline(out, efficiency, "stroke='#1f77b4' stroke-width='2'");
  svg::markers(out, efficiency, "#1f77b4", false);
  svg::polyline(out, loss, "stroke='#d62728' stroke-width='2'");
  svg::markers(out, loss, "#d62728", true);
  for (const CurvePoint &p : points) {
    if (p.automatic) {
      const double px = x(static_cast<double>(std::max<std::size_t>(p.n, 8)));
      svg::markers(out, {{px, y(p.mbit / sum)}}, "#9467bd", false);
      svg::text(out, px, y(p.mbit / sum) - 8, "auto N = " + std::to_string(p.n), "middle",
                "fill='#9467bd'");
    }
  }
  svg::text(out, kLeft + 8, kTop + kHeight - 24, "efficiency (goodput / sum of rates)", "start",
            "fill='#1f77b4'");
  svg::text(out, kLeft + 8, kTop + kHeight - 8, "part loss (overflow + timeout) / parts", "start",
            "fill='#d62728'");
  out << "</svg>\n";
}

// Benchmark 2 on real paths (the file comment): one lab, N set through the
// control socket between streams.
void bufferCurve(const std::filesystem::path &dir) {
  const Scenario s{"buffer-curve", {24, 24}, {5, 30}, "weighted", true};
  constexpr double kSum = 48;
  // The model's N: R parts/s (full parts of 1400 + 92 + 14 bytes on the
  // shaped veths) times the 25 ms delay spread, plus 2 per path. Queueing on
  // the slow path widens the real spread, so the real knee may sit above it.
  const double partsPerSecond = kSum * 1e6 / 8 / 1506;
  const double modelN =
      std::ceil(partsPerSecond * 0.025) + 2.0 * static_cast<double>(s.mbit.size());
  StripeLab lab(s);
  std::vector<CurvePoint> points;
  std::vector<std::optional<std::size_t>> sizes{8, 16, 32, 64, 128, 256, 512, std::nullopt};
  std::printf("\nbuffer curve: %s; model N = %.0f\n%8s %10s %10s %10s %10s %10s\n",
              "2 x 24 Mbit/s, delays 5 and 30 ms, weighted, 3 s TCP per N", modelN, "N",
              "osrd_Mb/s", "osrd_eff", "parts", "overflow", "timeout");
  for (const auto &n : sizes) {
    nvbox::test::throwIfInterrupted();
    lab.setBuffer(n);
    const auto before = lab.egressFlow();
    const auto count = [](const nlohmann::json &flow, const char *key) {
      return flow.is_object() ? flow.value(key, std::uint64_t{0}) : std::uint64_t{0};
    };
    CurvePoint p;
    p.automatic = !n.has_value();
    p.mbit = lab.goodput(false, 0, std::chrono::seconds(3));
    const auto after = lab.egressFlow();
    p.n = after["buffer"].get<std::size_t>();
    p.overflow = count(after, "lost_overflow") - count(before, "lost_overflow");
    p.timeout = count(after, "lost_timeout") - count(before, "lost_timeout");
    p.parts = count(after, "delivered") - count(before, "delivered") + p.overflow + p.timeout;
    std::printf("%8s %10.1f %10.3f %10llu %10llu %10llu\n",
                (p.automatic ? "auto " + std::to_string(p.n) : std::to_string(p.n)).c_str(), p.mbit,
                p.mbit / kSum, static_cast<unsigned long long>(p.parts),
                static_cast<unsigned long long>(p.overflow),
                static_cast<unsigned long long>(p.timeout));
    std::fflush(stdout);
    points.push_back(p);
  }
  std::ofstream csv(dir / "buffer_curve.csv");
  csv << "n,auto,osrd_mbit,efficiency,parts,lost_overflow,lost_timeout,part_loss,model_n\n";
  for (const CurvePoint &p : points) {
    csv << p.n << "," << (p.automatic ? 1 : 0) << "," << p.mbit << "," << p.mbit / kSum << ","
        << p.parts << "," << p.overflow << "," << p.timeout << "," << p.loss() << "," << modelN
        << "\n";
  }
  writeCurveSvg(dir / "buffer_curve.svg", points, kSum, modelN);
  std::printf("csv: %s, plot: %s\n", (dir / "buffer_curve.csv").c_str(),
              (dir / "buffer_curve.svg").c_str());
}

// --- streams with changes at set times ---------------------------------------

struct StreamRun {
  nvbox::test::Transfer got; // the receiver's side, with its timeline
  Clock::time_point start;
  std::vector<ActionSchedule::Done> done; // when each action began and ended, from start
};

// One checked stream src → sink (through osrd, or over MPTCP) for `length`,
// its arrivals sampled every `every`, with `actions` run at their offsets
// from its start. The start is taken just before transfer() sets the
// connection up, and the actions, the timeline (steady_clock) and every
// measurement window count from it, so they line up whatever the set-up takes
// (a few ms: the first sample shows it).
StreamRun stream(StripeLab &lab, bool mptcp, Clock::duration length,
                 std::chrono::milliseconds every, std::vector<ActionSchedule::Action> actions) {
  auto o = lab.transferOptions(mptcp);
  o.duration = std::chrono::duration_cast<std::chrono::milliseconds>(length);
  o.sampleEvery = every;
  StreamRun r;
  r.start = Clock::now();
  ActionSchedule schedule(r.start, std::move(actions));
  r.got = lab.checkedTransfer(o).second;
  r.done = schedule.finish();
  return r;
}

const char *stackName(bool mptcp) {
  return mptcp ? "mptcp" : "osrd";
}

// --- rate change -------------------------------------------------------------

constexpr double kLowMbit = 5; // path 2 between the two changes
constexpr auto kRateStream = 30s;
constexpr auto kRateDrop = 10s;
constexpr auto kRateBack = 20s;
// Bins of the plotted timeline. At 100 ms (the sampling period) MPTCP's bins
// swung between 6 and 150 Mbit/s on 60 Mbit/s of paths: data held back in its
// reordering queue arrives in bursts. 500 ms bins show the phases.
constexpr std::chrono::milliseconds kRateBin = 500ms;

struct RatePhase {
  const char *name;
  double begins;   // s from the stream's start
  double from, to; // measured window: 2 s after the start or a change left out
  double sum;      // Mbit/s of the paths
};
constexpr std::array<RatePhase, 3> kPhases{
    {{"0-10 s", 0, 2, 10, 60}, {"10-20 s", 10, 12, 20, 45}, {"20-30 s", 20, 22, 30, 60}}};

double sumOfRatesAt(double t) {
  double sum = kPhases.front().sum;
  for (const RatePhase &p : kPhases) {
    sum = t >= p.begins ? p.sum : sum;
  }
  return sum;
}

struct RateBin {
  double t; // bin start, s
  double osrd, mptcp, sum;
};

// Goodput over time, the sum of the rates as a step line, the changes marked
// and the seconds left out of the measurement shaded.
void writeRateChangeSvg(const std::filesystem::path &path, const std::vector<RateBin> &bins) {
  namespace svg = nvbox::bench::svg;
  constexpr double kLeft = 70, kTop = 66, kWidth = 620, kHeight = 300, kTMax = 30, kYMax = 80;
  const auto x = [&](double t) { return kLeft + kWidth * t / kTMax; };
  const auto y = [&](double mbit) {
    return kTop + kHeight * (1 - std::clamp(mbit / kYMax, 0., 1.));
  };
  std::ofstream out(path);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='760' height='470' "
         "font-family='sans-serif' font-size='12'>\n<rect width='760' height='470' "
         "fill='white'/>\n";
  svg::text(out, kLeft + kWidth / 2, 22,
            "40 + 20 Mbit/s, no rates declared: path 2 drops to 5 Mbit/s at 10 s, back at 20 s",
            "middle", "font-weight='bold'");
  svg::text(out, kLeft + kWidth / 2, 40,
            "one TCP stream through osrd (default scheduler) and one MPTCP connection, same lab; "
            "goodput per " +
                std::to_string(kRateBin.count()) + " ms");
  for (const RatePhase &p : kPhases) {
    svg::rect(out, x(p.begins), kTop, x(p.from) - x(p.begins), kHeight, "fill='#ececec'");
  }
  for (int t = 0; t <= 30; t += 5) {
    svg::line(out, x(t), kTop, x(t), kTop + kHeight, "stroke='#dddddd'");
    svg::text(out, x(t), kTop + kHeight + 16, std::to_string(t));
  }
  for (int m = 0; m <= static_cast<int>(kYMax); m += 10) {
    svg::line(out, kLeft, y(m), kLeft + kWidth, y(m), "stroke='#dddddd'");
    svg::text(out, kLeft - 6, y(m) + 4, std::to_string(m), "end");
  }
  svg::text(out, kLeft + kWidth / 2, kTop + kHeight + 36, "time since the stream started (s)");
  const std::string yLabel =
      "transform='rotate(-90 " + svg::num(kLeft - 40) + " " + svg::num(kTop + kHeight / 2) + ")'";
  svg::text(out, kLeft - 40, kTop + kHeight / 2, "goodput (Mbit/s)", "middle", yLabel.c_str());
  for (const auto &[t, label] : {std::pair{10.0, "path 2: 20 \u2192 5 Mbit/s"},
                                 std::pair{20.0, "path 2: 5 \u2192 20 Mbit/s"}}) {
    svg::line(out, x(t), kTop - 4, x(t), kTop + kHeight, "stroke='#555555' stroke-dasharray='4,3'");
    svg::text(out, x(t), kTop - 8, label, "middle", "fill='#333333'");
  }
  svg::Points sum, osrd, mptcp;
  for (const RatePhase &p : kPhases) {
    sum.emplace_back(x(p.begins), y(p.sum));
    sum.emplace_back(x(std::min(p.begins + 10, kTMax)), y(p.sum));
  }
  for (const RateBin &b : bins) {
    const double mid = b.t + static_cast<double>(kRateBin.count()) / 2000;
    osrd.emplace_back(x(mid), y(b.osrd));
    mptcp.emplace_back(x(mid), y(b.mptcp));
  }
  constexpr const char *kSumStyle = "stroke='#444444' stroke-width='2' stroke-dasharray='7,4'";
  constexpr const char *kOsrdStyle = "stroke='#1f77b4' stroke-width='2'";
  constexpr const char *kMptcpStyle = "stroke='#ff7f0e' stroke-width='2'";
  svg::polyline(out, sum, kSumStyle);
  svg::polyline(out, mptcp, kMptcpStyle);
  svg::polyline(out, osrd, kOsrdStyle);
  // Legend, under the plot where no line can cross it.
  const double row1 = kTop + kHeight + 62, row2 = row1 + 20;
  const auto item = [&](double lx, double ly, const char *style, const std::string &label) {
    svg::line(out, lx, ly - 4, lx + 28, ly - 4, style);
    svg::text(out, lx + 34, ly, label, "start");
  };
  item(kLeft, row1, kOsrdStyle, "osrd (default scheduler, nothing declared)");
  item(kLeft + 330, row1, kMptcpStyle, "Linux MPTCP (default scheduler)");
  item(kLeft, row2, kSumStyle, "sum of the paths' tbf rates");
  svg::rect(out, kLeft + 330, row2 - 10, 28, 10, "fill='#ececec'");
  svg::text(out, kLeft + 364, row2, "not measured: 2 s after the start and a change", "start");
  out << "</svg>\n";
}

void rateChange(const std::filesystem::path &dir) {
  const Scenario s{"rate-change", {40, 20}};
  StripeLab lab(s);
  const auto changes = [&] {
    return std::vector<ActionSchedule::Action>{
        {kRateDrop, [&] { lab.reshape(1, kLowMbit); }},
        {kRateBack, [&] { lab.reshape(1, static_cast<double>(s.mbit[1])); }}};
  };
  std::ofstream csv(dir / "rate_change.csv");
  csv << "run,stack,phase,window_from_s,window_to_s,sum_mbit,goodput_mbit,efficiency,"
         "drop_at_s,back_at_s,first_byte_s\n";
  std::printf("\nrate change: 40+20 Mbit/s, nothing declared, default scheduler; one 30 s stream "
              "per run, path 2 at 5 Mbit/s from 10 to 20 s\n");
  std::array<std::array<std::vector<double>, kPhases.size()>, 2> mbit; // [mptcp][phase]
  std::array<std::optional<StreamRun>, 2> plotted;                     // run 0, [mptcp]
  for (int run = 0; run < kRuns; ++run) {
    for (const bool mptcp : {false, true}) {
      nvbox::test::throwIfInterrupted();
      StreamRun r = stream(lab, mptcp, kRateStream, 100ms, changes());
      const double firstByte =
          r.got.timeline.empty() ? NAN : seconds(r.got.timeline.front().first - r.start);
      std::printf("  run %d %-5s:", run + 1, stackName(mptcp));
      for (std::size_t p = 0; p < kPhases.size(); ++p) {
        const RatePhase &phase = kPhases[p];
        const double g =
            nvbox::test::goodputBetween(r.got, plus(r.start, phase.from), plus(r.start, phase.to));
        mbit[mptcp][p].push_back(g);
        csv << run << "," << stackName(mptcp) << "," << phase.name << "," << phase.from << ","
            << phase.to << "," << phase.sum << "," << g << "," << g / phase.sum << ","
            << seconds(r.done[0].began) << "," << seconds(r.done[1].began) << "," << firstByte
            << "\n";
        std::printf(" %5.1f", g);
      }
      std::printf(" Mbit/s; path 2 changed at +%.3f and +%.3f s, first byte at +%.3f s\n",
                  seconds(r.done[0].began), seconds(r.done[1].began), firstByte);
      std::fflush(stdout);
      if (run == 0) {
        plotted[mptcp] = std::move(r);
      }
    }
  }
  std::printf("%-12s %-8s %8s %10s %9s %11s %10s\n", "scenario", "phase", "sum_Mb/s", "osrd_Mb/s",
              "osrd_eff", "mptcp_Mb/s", "mptcp_eff");
  for (std::size_t p = 0; p < kPhases.size(); ++p) {
    const double o = median(mbit[0][p]);
    const double m = median(mbit[1][p]);
    std::printf("%-12s %-8s %8.0f %10.1f %9.3f %11.1f %10.3f\n", s.name.c_str(), kPhases[p].name,
                kPhases[p].sum, o, o / kPhases[p].sum, m, m / kPhases[p].sum);
  }
  std::vector<RateBin> bins;
  const double bin = static_cast<double>(kRateBin.count()) / 1000;
  for (double t = 0; t + bin <= seconds(kRateStream) + 1e-9; t += bin) {
    const auto rate = [&](const StreamRun &r) {
      return nvbox::test::goodputBetween(r.got, plus(r.start, t), plus(r.start, t + bin));
    };
    bins.push_back({t, rate(*plotted[0]), rate(*plotted[1]), sumOfRatesAt(t)});
  }
  std::ofstream timeline(dir / "rate_change_timeline.csv");
  timeline << "t_s,osrd_mbit,mptcp_mbit,sum_mbit\n";
  for (const RateBin &b : bins) {
    timeline << b.t << "," << b.osrd << "," << b.mptcp << "," << b.sum << "\n";
  }
  writeRateChangeSvg(dir / "rate_change.svg", bins);
  std::printf("windows 2-10, 12-20 and 22-30 s of each stream; efficiency = goodput / that "
              "phase's sum of rates; medians of %d streams each\ncsv: %s, %s (run 1), plot: %s\n",
              kRuns, (dir / "rate_change.csv").c_str(), (dir / "rate_change_timeline.csv").c_str(),
              (dir / "rate_change.svg").c_str());
}

// --- path cut ----------------------------------------------------------------

constexpr std::size_t kCutPath = 1; // path 2
constexpr auto kCutStream = 12s;
constexpr auto kCutAt = 4s;
constexpr auto kRestoreAt = 8s;
constexpr auto kSettle = 2s; // left out of goodput after the restore

// Polls the ingress's status every 5 ms from a thread of its own and records
// when path `path` of its stripe goes down or up.
class PathWatch {
public:
  PathWatch(const StripeLab &lab, std::size_t path)
      : thread_([this, &lab, path](std::stop_token stop) { run(stop, lab, path); }) {}
  PathWatch(const PathWatch &) = delete;
  PathWatch &operator=(const PathWatch &) = delete;

  // Stops watching; returns the changes seen (the first is the initial state).
  std::vector<std::pair<Clock::time_point, bool>> finish() {
    thread_.request_stop();
    thread_.join();
    return changes_;
  }

private:
  void run(const std::stop_token &stop, const StripeLab &lab, std::size_t path) {
    std::optional<bool> last;
    while (!stop.stop_requested()) {
      try {
        const bool up =
            lab.control("ing", {{"cmd", "status"}})["status"]["stripes"][0]["paths"][path]["up"]
                .get<bool>();
        if (up != last) {
          changes_.emplace_back(Clock::now(), up);
          last = up;
        }
      } catch (const std::exception &) {
        // A status lost under load: the next poll will do.
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  std::vector<std::pair<Clock::time_point, bool>> changes_;
  std::jthread thread_; // last: started once the rest exists
};

// Milliseconds from `since` until the path's first change to `up` after it;
// NaN if it did not happen.
double msUntil(const std::vector<std::pair<Clock::time_point, bool>> &changes,
               Clock::time_point since, bool up) {
  for (const auto &[t, state] : changes) {
    if (t >= since && state == up) {
      return std::chrono::duration<double, std::milli>(t - since).count();
    }
  }
  return NAN;
}

struct CutRun {
  double outMs = NAN, backMs = NAN; // osrd only
  double stallMs = 0, stallFromCutMs = 0;
  double afterMbit = 0, restoredMbit = 0;
  std::uint64_t ingSendDrops = 0, relaySendDrops = 0;
  double cutS = 0, cutTookMs = 0, restoreS = 0;
};

std::uint64_t sendDrops(const StripeLab &lab, const std::string &daemon) {
  return lab.control(daemon, {{"cmd", "status"}})["status"]["counters"]["send_drops"]
      .get<std::uint64_t>();
}

CutRun cutRun(StripeLab &lab, bool mptcp) {
  const std::string relay = "r" + std::to_string(kCutPath + 1);
  const std::uint64_t ingDrops = sendDrops(lab, "ing");
  const std::uint64_t relayDrops = sendDrops(lab, relay);
  std::optional<PathWatch> watch;
  if (!mptcp) {
    watch.emplace(lab, kCutPath);
  }
  const StreamRun r =
      stream(lab, mptcp, kCutStream, 10ms,
             {{kCutAt, [&] { lab.cut(kCutPath); }}, {kRestoreAt, [&] { lab.restore(kCutPath); }}});
  const auto cut = r.start + r.done[0].began;
  const auto back = r.start + r.done[1].began;
  CutRun c;
  c.cutS = seconds(r.done[0].began);
  c.cutTookMs = seconds(r.done[0].ended - r.done[0].began) * 1000;
  c.restoreS = seconds(r.done[1].began);
  if (watch) {
    const auto changes = watch->finish();
    c.outMs = msUntil(changes, cut, false);
    c.backMs = msUntil(changes, back, true);
  }
  const auto stall = nvbox::test::longestStall(r.got, cut, back);
  c.stallMs = std::chrono::duration<double, std::milli>(stall.length).count();
  c.stallFromCutMs = std::chrono::duration<double, std::milli>(stall.start - cut).count();
  // The whole time the path is cut, stall included: a burst that a stall
  // held back (MPTCP re-injects what its dead subflow had in flight) counts
  // in the same window as the stall, so the figure cannot exceed the paths.
  c.afterMbit = nvbox::test::goodputBetween(r.got, cut, back);
  c.restoredMbit = nvbox::test::goodputBetween(r.got, back + kSettle, r.start + kCutStream);
  c.ingSendDrops = sendDrops(lab, "ing") - ingDrops;
  c.relaySendDrops = sendDrops(lab, relay) - relayDrops;
  // The next run starts with every path in the stripe again.
  lab.waitForAllPaths();
  return c;
}

void pathCut(const std::filesystem::path &dir) {
  const Scenario s{"path-cut", {16, 16, 16}};
  const double sum = s.sumMbit();
  const double remaining = sum - static_cast<double>(s.mbit[kCutPath]);
  StripeLab lab(s);
  std::ofstream csv(dir / "path_cut.csv");
  csv << "run,stack,out_ms,back_ms,stall_ms,stall_from_cut_ms,after_mbit,after_efficiency,"
         "restored_mbit,restored_efficiency,ing_send_drops,relay_send_drops,cut_at_s,"
         "cut_took_ms,restore_at_s\n";
  std::printf("\npath cut: 3 x 16 Mbit/s, nothing declared, default scheduler; one 12 s stream per "
              "run, path 2 cut silently at 4 s (relay's link to the egress down), back at 8 s\n");
  std::array<std::vector<CutRun>, 2> runs; // [mptcp]
  for (int run = 0; run < kRuns; ++run) {
    for (const bool mptcp : {false, true}) {
      nvbox::test::throwIfInterrupted();
      const CutRun c = cutRun(lab, mptcp);
      runs[mptcp].push_back(c);
      csv << run << "," << stackName(mptcp) << "," << fixed(c.outMs, 1) << "," << fixed(c.backMs, 1)
          << "," << c.stallMs << "," << c.stallFromCutMs << "," << c.afterMbit << ","
          << c.afterMbit / remaining << "," << c.restoredMbit << "," << c.restoredMbit / sum << ","
          << c.ingSendDrops << "," << c.relaySendDrops << "," << c.cutS << "," << c.cutTookMs << ","
          << c.restoreS << "\n";
      std::printf("  run %d %-5s: out after %s ms, back after %s ms, longest stall %.0f ms "
                  "(%+.0f ms from the cut), %.1f Mbit/s after the cut, %.1f after the restore; "
                  "send_drops ing +%llu, relay +%llu\n",
                  run + 1, stackName(mptcp), fixed(c.outMs, 0).c_str(), fixed(c.backMs, 0).c_str(),
                  c.stallMs, c.stallFromCutMs, c.afterMbit, c.restoredMbit,
                  static_cast<unsigned long long>(c.ingSendDrops),
                  static_cast<unsigned long long>(c.relaySendDrops));
      std::fflush(stdout);
    }
  }
  std::printf("%-9s %-6s %7s %8s %9s %11s %10s %13s\n", "scenario", "stack", "out_ms", "back_ms",
              "stall_ms", "after_Mb/s", "after_eff", "restored_eff");
  for (const bool mptcp : {false, true}) {
    const auto figure = [&](double CutRun::*field) {
      std::vector<double> v;
      for (const CutRun &c : runs[mptcp]) {
        v.push_back(c.*field);
      }
      return medianOfSome(v);
    };
    const double after = figure(&CutRun::afterMbit);
    std::printf("%-9s %-6s %7s %8s %9.0f %11.1f %10.3f %13.3f\n", s.name.c_str(), stackName(mptcp),
                fixed(figure(&CutRun::outMs), 0).c_str(), fixed(figure(&CutRun::backMs), 0).c_str(),
                figure(&CutRun::stallMs), after, after / remaining,
                figure(&CutRun::restoredMbit) / sum);
  }
  std::printf("out/back: from the cut/restore until the ingress reported the path down/up "
              "(status polled every 5 ms); stall: longest gap without bytes at the receiver "
              "(10 ms samples) between cut and restore; after: goodput from the cut to the "
              "restore / %.0f Mbit/s; restored: from 2 s after the restore to the end / "
              "%.0f; medians of %d\ncsv: %s\n",
              remaining, sum, kRuns, (dir / "path_cut.csv").c_str());
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "bench";
  const std::string filter = argc > 2 ? argv[2] : "";
  const Selected selected = [&](const std::string &name) {
    return name.find(filter) != std::string::npos;
  };
  nvbox::test::catchTermination();
  std::filesystem::create_directories(dir);
  try {
    aggregation(dir, selected);
    if (selected("buffer-curve")) {
      bufferCurve(dir);
    }
    if (selected("rate-change")) {
      rateChange(dir);
    }
    if (selected("path-cut")) {
      pathCut(dir);
    }
  } catch (const std::exception &e) {
    std::cerr << "aggregation_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

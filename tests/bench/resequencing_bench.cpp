// resequencing_bench — re-sequencing buffer size N versus part loss and
// goodput for a given delay spread (paper section 4.2.3: a finite buffer of N
// parts at the egress; "part loss" when it is full while parts are still
// awaited). osrd benchmark 2.
//
//   resequencing_bench [DIR]   writes DIR/resequencing.csv and
//                              DIR/resequencing.svg (default DIR: bench)
//
// A sender offers kLoad of the paths' summed rate R as parts of S = 1400
// bytes; the StripeScheduler (Weighted, and DelayAware for comparison) puts
// each part on one of the LoopbackPaths (rates and one-way delays, no loss,
// no injected reordering); the far end pushes every arrival into one
// ResequencingBuffer per N. The paths are open loop — nothing the receiver
// does reaches the sender — so one simulated run feeds every N at once and
// all of them see the very same arrivals. Gap timeout: the one sizeFor()
// recommends (1.5 x the latency spread); no gap lasts that long here, so it
// never fires (checked).
//
// Per N: part loss (lost_overflow + lost_timeout) / sent, goodput (payload
// bytes delivered in order / time of the last delivery) relative to R, peak
// occupancy (the buffer's counter, and the steady-state peak while the sender
// still sends), mean send-to-in-order-delivery latency — next to the analytic
// expectation (docs/osrd-benchmarks.md derives it) and to the same run's
// baseline: N = 4 x the sizeFor() value, a buffer that never fills.
//
// Exits non-zero only on an inconsistency: broken accounting or order, a gap
// timeout firing, loss increasing with N, loss > 0.1 % at sizeFor's N or in
// the baseline, or the measurement disagreeing with the model away from its
// steps.
#include "loopback_paths.hh"
#include "osr/resequencing_buffer.hpp"
#include "osr/stripe_scheduler.hpp"
#include "svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using nvbox::osr::LossCause;
using nvbox::osr::Nanos;
using nvbox::osr::Part;
using nvbox::osr::PathId;
using nvbox::osr::PathModel;
using nvbox::osr::ResequencingBuffer;
using nvbox::osr::ResequencingSink;
using nvbox::osr::StripePolicy;
using nvbox::osr::StripeScheduler;
using nvbox::osr::testing::LoopbackPaths;
using nvbox::osr::testing::SimPathConfig;

constexpr std::size_t kPartBytes = 1400;
constexpr std::uint64_t kParts = 200'000;
constexpr double kLoad = 0.95;                   // offered / sum of path rates
constexpr std::uint32_t kFirstSeq = 0xFFFF0000U; // every run crosses the 2^32 wrap
constexpr Nanos kTick = 1ms;                     // the receiver's expire() timer
constexpr Nanos kDrain = 2s;
constexpr std::size_t kMaxSweep = 1024;
constexpr double kSizeForLossLimit = 0.001;
constexpr double kMonotoneSlack = 0.0005;
constexpr double kModelTolerance = 0.002;

double seconds(Nanos n) {
  return std::chrono::duration<double>(n).count();
}

struct Scenario {
  std::string id;
  std::string title;
  std::vector<SimPathConfig> paths;
};

double totalRate(const Scenario &scenario) {
  double total = 0;
  for (const auto &path : scenario.paths) {
    total += path.rate_bytes_per_s;
  }
  return total;
}

// The fluid model of docs/osrd-benchmarks.md for Weighted striping. Path j
// carries a share f_j = r_j / R of the sequence numbers; its parts take
// e_j = d_j + S / r_j; a part sent at t on path j arrives after every part sent
// up to t + (e_j - e_min) on the fastest path, i.e. L_j = lambda (e_j - e_min)
// sequence numbers later (lambda: offered parts per second). The buffer has
// already slid past it when it arrives iff N <= L_j: part loss.
struct Model {
  std::vector<double> share;
  std::vector<double> lead;
  double fastest_spacing = 1; // R / r of the fastest path: its seq spacing
  double load = kLoad;

  double loss(double n) const {
    double lost = 0;
    for (std::size_t j = 0; j < lead.size(); ++j) {
      lost += n <= lead[j] ? share[j] : 0.0;
    }
    return lost;
  }

  // Steady-state peak occupancy. The window holds the surviving paths' parts
  // that arrived ahead of the oldest awaited one: leads [L_j, H), H = N while
  // some path is being lost (the overflow pins the window to the newest
  // arrival), else max L_j.
  double peak(double n) const {
    double head = 0;
    bool losing = false;
    for (const double l : lead) {
      losing = losing || n <= l;
      head = std::max(head, l);
    }
    if (losing) {
      head = n;
    }
    double held = 0;
    for (std::size_t j = 0; j < lead.size(); ++j) {
      if (lead[j] < n) {
        held += share[j] * std::max(0.0, head - lead[j]);
      }
    }
    return held;
  }

  // Where the measurement may sit on either side of a step: a part's real
  // lead is the largest actually-sent faster-path seq, i.e. in
  // (L_j - fastest_spacing, L_j], plus a part of queueing jitter.
  bool nearStep(double n) const {
    return std::any_of(lead.begin(), lead.end(), [&](double l) {
      return l >= 1 && n > l - fastest_spacing - 1 && n <= l + 2;
    });
  }

  std::vector<double> steps() const {
    std::vector<double> out;
    for (const double l : lead) {
      if (l >= 1) {
        out.push_back(l);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

Model weightedModel(const Scenario &scenario, double load) {
  const double total = totalRate(scenario);
  const double part = static_cast<double>(kPartBytes);
  double fastest = std::numeric_limits<double>::infinity();
  double fastest_rate = 1;
  for (const auto &path : scenario.paths) {
    const double latency = seconds(path.delay) + part / path.rate_bytes_per_s;
    if (latency < fastest) {
      fastest = latency;
      fastest_rate = path.rate_bytes_per_s;
    }
  }
  Model model;
  model.load = load;
  model.fastest_spacing = total / fastest_rate;
  const double parts_per_second = load * total / part;
  for (const auto &path : scenario.paths) {
    const double latency = seconds(path.delay) + part / path.rate_bytes_per_s;
    model.share.push_back(path.rate_bytes_per_s / total);
    model.lead.push_back(parts_per_second * (latency - fastest));
  }
  return model;
}

enum class Role { Sweep, Edge, SizeFor, Baseline };

const char *roleName(Role role) {
  switch (role) {
  case Role::Sweep:
    return "sweep";
  case Role::Edge:
    return "edge";
  case Role::SizeFor:
    return "sizeFor";
  case Role::Baseline:
    return "baseline";
  }
  return "?";
}

const char *policyName(StripePolicy policy) {
  return policy == StripePolicy::Weighted ? "weighted" : "delay-aware";
}

// Checks the buffer's contract (every seq released once, in order) and
// measures what the application would see.
class MeasuringSink final : public ResequencingSink {
public:
  MeasuringSink(Nanos send_gap, std::uint32_t k)
      : send_gap_(send_gap), k_(k), segment_lost_(kParts / k + 1, false) {}

  void deliver(const Part &part) override {
    expect(part.seq, 1);
    std::uint32_t carried = 0;
    std::memcpy(&carried, part.payload.data(), sizeof carried);
    payload_errors += carried != part.seq || part.payload.size() != kPartBytes;
    ++delivered;
    bytes += part.payload.size();
    last_delivery = now;
    const std::uint32_t index = part.seq - kFirstSeq;
    latency_sum += seconds(now - send_gap_ * static_cast<Nanos::rep>(index));
  }

  void lost(std::uint32_t first_seq, std::uint32_t count, LossCause) override {
    expect(first_seq, count);
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint32_t index = first_seq + i - kFirstSeq;
      if (index < kParts) {
        segment_lost_[index / k_] = true;
      }
    }
  }

  std::uint64_t lostSegments() const {
    return static_cast<std::uint64_t>(std::count(segment_lost_.begin(), segment_lost_.end(), true));
  }

  Nanos now{}; // set by the caller before every push() and expire()
  std::uint64_t delivered = 0;
  std::uint64_t bytes = 0;
  std::uint64_t order_violations = 0;
  std::uint64_t payload_errors = 0;
  Nanos last_delivery{};
  double latency_sum = 0;

private:
  void expect(std::uint32_t first, std::uint32_t count) {
    order_violations += first != next_ || count == 0;
    next_ = first + count;
  }

  Nanos send_gap_;
  std::uint32_t k_;
  std::uint32_t next_ = kFirstSeq;
  std::vector<bool> segment_lost_;
};

struct Receiver {
  Receiver(std::size_t n, Role r, Nanos gap_timeout, Nanos send_gap, std::uint32_t k)
      : capacity(n), role(r), buffer({.capacity = n,
                                      .max_part_bytes = kPartBytes,
                                      .gap_timeout = gap_timeout,
                                      .first_seq = kFirstSeq}),
        sink(send_gap, k) {}
  std::size_t capacity;
  Role role;
  ResequencingBuffer buffer;
  MeasuringSink sink;
  std::size_t steady_peak = 0; // peak occupancy while the sender is still sending
};

struct Row {
  std::string scenario;
  StripePolicy policy = StripePolicy::Weighted;
  std::size_t n = 0;
  Role role = Role::Sweep;
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t lost_overflow = 0;
  std::uint64_t lost_timeout = 0;
  std::uint64_t too_old = 0;
  std::uint64_t reordered = 0;
  std::uint64_t peak = 0;
  std::uint64_t steady_peak = 0;
  double loss = 0;
  double expected_loss = 0;
  double segment_loss = 0;
  double goodput = 0; // relative to the sum of path rates
  double expected_goodput = 0;
  double goodput_vs_baseline = 0;
  double expected_peak = 0;
  double latency_ms = 0;
  bool near_step = false;
  bool accounting_ok = true;
};

struct PolicyRun {
  StripePolicy policy = StripePolicy::Weighted;
  std::vector<Row> rows{}; // ascending N
  std::vector<double> path_share{};
};

PolicyRun runPolicy(const Scenario &scenario, StripePolicy policy,
                    const std::map<std::size_t, Role> &points, Nanos gap_timeout, Nanos send_gap,
                    const Model &model) {
  LoopbackPaths paths(1);
  StripeScheduler scheduler(policy);
  for (const auto &config : scenario.paths) {
    const PathId id = paths.addPath(config);
    scheduler.addPath(id, static_cast<std::uint64_t>(config.rate_bytes_per_s), config.delay);
  }
  // A segment is k parts, one per path on average.
  const auto k = static_cast<std::uint8_t>(scenario.paths.size());
  std::vector<std::unique_ptr<Receiver>> receivers;
  for (const auto &[n, role] : points) {
    receivers.push_back(std::make_unique<Receiver>(n, role, gap_timeout, send_gap, k));
  }

  // Once the sender stops, the late paths fill the tail of the window with
  // nothing newer to push it on: occupancy rises (to about N times the late
  // paths' share) in a way no steady stream shows, so it is measured apart.
  bool sending = true;
  const auto receive = [&](PathId path, std::span<const std::uint8_t> bytes, Nanos at) {
    std::uint32_t seq = 0;
    std::memcpy(&seq, bytes.data(), sizeof seq);
    const Part part{.seq = seq, .path_id = path, .payload = bytes};
    for (auto &receiver : receivers) {
      receiver->sink.now = at;
      receiver->buffer.push(part, at, receiver->sink);
      if (sending) {
        receiver->steady_peak = std::max(receiver->steady_peak, receiver->buffer.occupancy());
      }
    }
  };
  Nanos next_tick = kTick;
  const auto advanceTo = [&](Nanos until) {
    while (next_tick <= until) {
      paths.deliverUntil(next_tick, receive);
      for (auto &receiver : receivers) {
        receiver->sink.now = next_tick;
        receiver->buffer.expire(next_tick, receiver->sink);
      }
      next_tick += kTick;
    }
    paths.deliverUntil(until, receive);
  };

  std::vector<std::uint8_t> datagram(kPartBytes, 0);
  for (std::uint64_t i = 0; i < kParts; ++i) {
    const Nanos now = send_gap * static_cast<Nanos::rep>(i);
    advanceTo(now);
    const auto choice = scheduler.pick(static_cast<std::uint8_t>(i % k), kPartBytes, now);
    if (!choice) {
      throw std::runtime_error("the scheduler has no active path");
    }
    const std::uint32_t seq = kFirstSeq + static_cast<std::uint32_t>(i);
    std::memcpy(datagram.data(), &seq, sizeof seq);
    paths.send(choice->path, datagram, now);
  }
  sending = false;
  advanceTo(send_gap * static_cast<Nanos::rep>(kParts) + kDrain);
  if (paths.nextArrival()) {
    throw std::runtime_error("parts still in flight after the drain");
  }

  PolicyRun run{.policy = policy};
  for (PathId id = 0; id < scenario.paths.size(); ++id) {
    run.path_share.push_back(static_cast<double>(scheduler.counters(id).parts) /
                             static_cast<double>(kParts));
  }
  const double rate = totalRate(scenario);
  const bool weighted = policy == StripePolicy::Weighted;
  for (const auto &receiver : receivers) {
    const auto &c = receiver->buffer.counters();
    const MeasuringSink &sink = receiver->sink;
    Row row{
        .scenario = scenario.id, .policy = policy, .n = receiver->capacity, .role = receiver->role};
    row.sent = kParts;
    row.delivered = c.delivered;
    row.lost_overflow = c.lost_overflow;
    row.lost_timeout = c.lost_timeout;
    row.too_old = c.too_old;
    row.reordered = c.reordered;
    row.peak = c.peak_occupancy;
    row.steady_peak = receiver->steady_peak;
    row.loss = static_cast<double>(c.lost_overflow + c.lost_timeout) / static_cast<double>(kParts);
    row.segment_loss =
        static_cast<double>(sink.lostSegments()) / static_cast<double>((kParts + k - 1) / k);
    row.goodput = static_cast<double>(sink.bytes) / seconds(sink.last_delivery) / rate;
    row.latency_ms =
        sink.delivered > 0 ? 1e3 * sink.latency_sum / static_cast<double>(sink.delivered) : 0.0;
    // DelayAware: successive etas never decrease, so parts arrive in order
    // and no N loses anything (and nothing is held).
    const auto n = static_cast<double>(receiver->capacity);
    row.expected_loss = weighted ? model.loss(n) : 0.0;
    row.expected_peak = weighted ? model.peak(n) : 0.0;
    row.expected_goodput = model.load * (1 - row.expected_loss);
    row.near_step = weighted && model.nearStep(n);
    // Every part arrives (no path loss), so each one declared lost must show
    // up later as too_old.
    row.accounting_ok =
        sink.order_violations == 0 && sink.payload_errors == 0 && sink.delivered == c.delivered &&
        c.duplicates == 0 && c.delivered + c.lost_overflow + c.lost_timeout == kParts &&
        c.too_old == c.lost_overflow + c.lost_timeout && c.peak_occupancy <= receiver->capacity;
    run.rows.push_back(row);
  }
  double baseline = 0;
  for (const Row &row : run.rows) {
    if (row.role == Role::Baseline) {
      baseline = row.goodput;
    }
  }
  for (Row &row : run.rows) {
    row.goodput_vs_baseline = baseline > 0 ? row.goodput / baseline : 0.0;
  }
  return run;
}

struct ScenarioResult {
  Scenario scenario;
  Model model{};
  std::size_t size_for = 0;
  Nanos gap_timeout{};
  double load = kLoad;
  double spread_ms = 0;
  std::vector<PolicyRun> runs{};
};

std::string fmt(const char *format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string pct(double fraction) {
  return fmt("%.3f", 100 * fraction);
}

ScenarioResult runScenario(const Scenario &scenario) {
  ScenarioResult result{.scenario = scenario};
  const double rate = totalRate(scenario);
  const Nanos send_gap(static_cast<Nanos::rep>(
      std::llround(static_cast<double>(kPartBytes) * 1e9 / (kLoad * rate))));
  result.load = static_cast<double>(kPartBytes) / seconds(send_gap) / rate;
  result.model = weightedModel(scenario, result.load);

  std::vector<PathModel> models;
  double fastest = std::numeric_limits<double>::infinity();
  double slowest = 0;
  for (const auto &path : scenario.paths) {
    models.push_back({path.rate_bytes_per_s, path.delay});
    const double latency =
        seconds(path.delay) + static_cast<double>(kPartBytes) / path.rate_bytes_per_s;
    fastest = std::min(fastest, latency);
    slowest = std::max(slowest, latency);
  }
  result.spread_ms = 1e3 * (slowest - fastest);
  const auto sizing = ResequencingBuffer::sizeFor(models, kPartBytes);
  result.size_for = sizing.capacity;
  result.gap_timeout = sizing.gap_timeout;

  // Half-octave sweep, the model's step edges, sizeFor's N and the baseline.
  std::map<std::size_t, Role> points;
  for (int i = 0; i <= 2 * static_cast<int>(std::log2(kMaxSweep)); ++i) {
    points.emplace(static_cast<std::size_t>(std::lround(std::exp2(i / 2.0))), Role::Sweep);
  }
  for (const double step : result.model.steps()) {
    const auto base = static_cast<long>(step);
    for (long n = base - 2; n <= base + 2; ++n) {
      if (n >= 1) {
        points[static_cast<std::size_t>(n)] = Role::Edge;
      }
    }
  }
  points[result.size_for] = Role::SizeFor;
  points[4 * result.size_for] = Role::Baseline;

  for (const auto policy : {StripePolicy::Weighted, StripePolicy::DelayAware}) {
    result.runs.push_back(
        runPolicy(scenario, policy, points, sizing.gap_timeout, send_gap, result.model));
  }
  return result;
}

std::vector<std::string> check(const ScenarioResult &result) {
  std::vector<std::string> problems;
  for (const PolicyRun &run : result.runs) {
    const std::string where = result.scenario.id + "/" + policyName(run.policy) + " N=";
    for (std::size_t i = 0; i < run.rows.size(); ++i) {
      const Row &row = run.rows[i];
      const std::string at = where + std::to_string(row.n) + ": ";
      if (!row.accounting_ok) {
        problems.push_back(at + "accounting or order broken");
      }
      if (row.lost_timeout != 0) {
        problems.push_back(at + std::to_string(row.lost_timeout) + " parts lost to the timeout");
      }
      if (i > 0 && row.loss > run.rows[i - 1].loss + kMonotoneSlack) {
        problems.push_back(at + "loss " + pct(row.loss) +
                           " % above N=" + std::to_string(run.rows[i - 1].n) + "'s " +
                           pct(run.rows[i - 1].loss) + " %");
      }
      if ((row.role == Role::SizeFor || row.role == Role::Baseline) &&
          row.loss > kSizeForLossLimit) {
        problems.push_back(at + "loss " + pct(row.loss) + " % at " + roleName(row.role));
      }
      if (!row.near_step && std::abs(row.loss - row.expected_loss) > kModelTolerance) {
        problems.push_back(at + "loss " + pct(row.loss) + " % but the model expects " +
                           pct(row.expected_loss) + " %");
      }
    }
  }
  return problems;
}

void printScenario(const ScenarioResult &result) {
  const auto &s = result.scenario;
  std::cout << "\n== " << s.id << ": " << s.title << "\n";
  std::cout << "   S = " << kPartBytes << " B, " << kParts << " parts, offered "
            << fmt("%.2f", 100 * result.load) << " % of R = " << fmt("%.0f", 8e-6 * totalRate(s))
            << " Mbit/s; latency spread D = " << fmt("%.2f", result.spread_ms)
            << " ms; model steps L_j =";
  for (const double step : result.model.steps()) {
    std::cout << " " << fmt("%.1f", step);
  }
  std::cout << "\n   sizeFor: N = " << result.size_for << ", gap timeout "
            << fmt("%.1f", 1e3 * seconds(result.gap_timeout))
            << " ms; baseline N = " << 4 * result.size_for << "\n";
  for (const PolicyRun &run : result.runs) {
    std::cout << "   parts per path (" << policyName(run.policy) << "):";
    for (const double share : run.path_share) {
      std::cout << " " << fmt("%.1f", 100 * share) << " %";
    }
    std::cout << "\n";
  }
  const PolicyRun &weighted = result.runs[0];
  const PolicyRun &aware = result.runs[1];
  std::printf("   %5s %-8s | %-74s | %s\n", "", "", "weighted", "delay-aware");
  std::printf("   %5s %-8s | %8s %8s %7s %7s %5s %6s %6s %7s | %8s %7s %5s %7s\n", "N", "role",
              "loss %", "model %", "gput/R", "vs base", "peak", "steady", "model", "lat ms",
              "loss %", "gput/R", "peak", "lat ms");
  for (std::size_t i = 0; i < weighted.rows.size(); ++i) {
    const Row &w = weighted.rows[i];
    const Row &a = aware.rows[i];
    std::printf("   %5zu %-8s | %8.3f %7.3f%s %7.4f %7.4f %5llu %6llu %6.1f %7.2f | %8.3f %7.4f "
                "%5llu %7.2f\n",
                w.n, w.role == Role::Sweep ? "" : roleName(w.role), 100 * w.loss,
                100 * w.expected_loss, w.near_step ? "~" : " ", w.goodput, w.goodput_vs_baseline,
                static_cast<unsigned long long>(w.peak),
                static_cast<unsigned long long>(w.steady_peak), w.expected_peak, w.latency_ms,
                100 * a.loss, a.goodput, static_cast<unsigned long long>(a.peak), a.latency_ms);
  }
  std::cout << "   (~: within a model step's blur; peak: the buffer's counter, whole run; "
               "steady: while sending)\n";
}

void writeCsv(const std::filesystem::path &path, const std::vector<ScenarioResult> &results) {
  std::ofstream out(path);
  out << "scenario,policy,n,role,sent,delivered,lost_overflow,lost_timeout,too_old,reordered,"
         "loss,expected_loss,near_step,segment_loss,goodput_ratio,expected_goodput_ratio,"
         "goodput_vs_baseline,peak_occupancy,steady_peak_occupancy,expected_steady_peak,mean_"
         "latency_ms,sizefor_n,"
         "gap_timeout_ms,offered_load,spread_ms\n";
  for (const ScenarioResult &result : results) {
    for (const PolicyRun &run : result.runs) {
      for (const Row &r : run.rows) {
        out << r.scenario << ',' << policyName(r.policy) << ',' << r.n << ',' << roleName(r.role)
            << ',' << r.sent << ',' << r.delivered << ',' << r.lost_overflow << ','
            << r.lost_timeout << ',' << r.too_old << ',' << r.reordered << ','
            << fmt("%.6f", r.loss) << ',' << fmt("%.6f", r.expected_loss) << ','
            << (r.near_step ? 1 : 0) << ',' << fmt("%.6f", r.segment_loss) << ','
            << fmt("%.6f", r.goodput) << ',' << fmt("%.6f", r.expected_goodput) << ','
            << fmt("%.6f", r.goodput_vs_baseline) << ',' << r.peak << ',' << r.steady_peak << ','
            << fmt("%.2f", r.expected_peak) << ',' << fmt("%.3f", r.latency_ms) << ','
            << result.size_for << ',' << fmt("%.3f", 1e3 * seconds(result.gap_timeout)) << ','
            << fmt("%.6f", result.load) << ',' << fmt("%.3f", result.spread_ms) << '\n';
      }
    }
  }
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

// --- SVG ------------------------------------------------------------------

struct Plot {
  double left, top, width, height, x_max;
  double x(double n) const { return left + width * std::log2(n) / x_max; }
  double yLoss(double fraction) const { return top + height * (1 - fraction); }
  double yGoodput(double ratio) const { return top + height * (1 - ratio); }
};

using nvbox::bench::svg::line;
using nvbox::bench::svg::markers;
using nvbox::bench::svg::num;
using nvbox::bench::svg::polyline;
using nvbox::bench::svg::text;

constexpr const char *kWeightedLoss = "#d62728";
constexpr const char *kModelLoss = "#000000";
constexpr const char *kAwareLoss = "#ff7f0e";
constexpr const char *kWeightedGoodput = "#1f77b4";
constexpr const char *kAwareGoodput = "#17becf";
constexpr const char *kSizeFor = "#2ca02c";
constexpr const char *kBaseline = "#9467bd";

void panel(std::ostream &out, const ScenarioResult &result, double top) {
  std::size_t n_max = 1;
  for (const Row &row : result.runs[0].rows) {
    n_max = std::max(n_max, row.n);
  }
  const Plot plot{.left = 80,
                  .top = top + 50,
                  .width = 760,
                  .height = 300,
                  .x_max = std::ceil(std::log2(static_cast<double>(n_max)))};
  const double bottom = plot.top + plot.height;
  const double right = plot.left + plot.width;
  text(out, plot.left + plot.width / 2, top + 30, result.scenario.id + ": " + result.scenario.title,
       "middle", "font-size='15' font-weight='bold'");
  // Grid, ticks and labels.
  for (int k = 0; k <= static_cast<int>(plot.x_max); ++k) {
    const double gx = plot.x(std::exp2(k));
    line(out, gx, plot.top, gx, bottom, "stroke='#e4e4e4'");
    line(out, gx, bottom, gx, bottom + 5, "stroke='black'");
    text(out, gx, bottom + 19, std::to_string(1 << k));
  }
  for (int k = 0; k <= 5; ++k) {
    const double fraction = k / 5.0;
    const double gy = plot.yLoss(fraction);
    line(out, plot.left, gy, right, gy, "stroke='#e4e4e4'");
    line(out, plot.left - 5, gy, plot.left, gy, "stroke='black'");
    line(out, right, gy, right + 5, gy, "stroke='black'");
    text(out, plot.left - 8, gy + 4, fmt("%.0f", 100 * fraction), "end");
    text(out, right + 8, gy + 4, fmt("%.1f", fraction), "start");
  }
  out << "<rect x='" << num(plot.left) << "' y='" << num(plot.top) << "' width='" << num(plot.width)
      << "' height='" << num(plot.height) << "' fill='none' stroke='black'/>\n";
  text(out, plot.left + plot.width / 2, bottom + 40,
       "re-sequencing buffer size N (parts, log2 scale)");
  const double mid = plot.top + plot.height / 2;
  text(out, plot.left - 45, mid, "part loss (%)", "middle",
       ("transform='rotate(-90 " + num(plot.left - 45) + " " + num(mid) + ")'").c_str());
  text(out, right + 50, mid, "goodput / sum of path rates", "middle",
       ("transform='rotate(90 " + num(right + 50) + " " + num(mid) + ")'").c_str());

  // Markers for sizeFor's N, the baseline and the model's steps.
  const auto vertical = [&](double n, const char *style, const std::string &label,
                            const char *color, double label_y) {
    const double vx = plot.x(n);
    line(out, vx, plot.top, vx, bottom, style);
    // Labels go right of their line, or left of it near the right edge.
    const bool room = vx + 120 < right;
    text(out, room ? vx + 4 : vx - 4, label_y, label, room ? "start" : "end",
         (std::string("font-size='11' fill='") + color + "'").c_str());
  };
  for (const double step : result.model.steps()) {
    vertical(step, "stroke='#777' stroke-dasharray='2,3'", "L = " + fmt("%.1f", step), "#555",
             plot.top + plot.height * 0.52);
  }
  vertical(static_cast<double>(result.size_for), "stroke='#2ca02c' stroke-width='1.5'",
           "sizeFor N = " + std::to_string(result.size_for), kSizeFor,
           plot.top + plot.height * 0.40);
  vertical(static_cast<double>(4 * result.size_for),
           "stroke='#9467bd' stroke-width='1.5' stroke-dasharray='8,3,2,3'",
           "baseline N = " + std::to_string(4 * result.size_for), kBaseline,
           plot.top + plot.height * 0.28);

  for (const PolicyRun &run : result.runs) {
    const bool weighted = run.policy == StripePolicy::Weighted;
    std::vector<std::pair<double, double>> loss;
    std::vector<std::pair<double, double>> goodput;
    for (const Row &row : run.rows) {
      const double px = plot.x(static_cast<double>(row.n));
      loss.emplace_back(px, plot.yLoss(row.loss));
      goodput.emplace_back(px, plot.yGoodput(row.goodput));
    }
    const std::string loss_style =
        std::string("stroke='") + (weighted ? kWeightedLoss : kAwareLoss) + "' stroke-width='2'";
    const std::string goodput_style =
        std::string("stroke='") + (weighted ? kWeightedGoodput : kAwareGoodput) +
        "' stroke-width='2'" + (weighted ? "" : " stroke-dasharray='5,3'");
    polyline(out, goodput, goodput_style.c_str());
    markers(out, goodput, weighted ? kWeightedGoodput : kAwareGoodput, !weighted);
    polyline(out, loss, loss_style.c_str());
    markers(out, loss, weighted ? kWeightedLoss : kAwareLoss, !weighted);
  }

  // The model on top: a step function of N, drawn exactly (not sampled).
  std::vector<std::pair<double, double>> model;
  double level = result.model.loss(1);
  model.emplace_back(plot.x(1), plot.yLoss(level));
  for (const double step : result.model.steps()) {
    model.emplace_back(plot.x(step), plot.yLoss(level));
    level = result.model.loss(step + 1e-9);
    model.emplace_back(plot.x(step), plot.yLoss(level));
  }
  model.emplace_back(plot.x(std::exp2(plot.x_max)), plot.yLoss(level));
  polyline(out, model, "stroke='#000' stroke-width='1.2' stroke-dasharray='6,4'");
}

void writeSvg(const std::filesystem::path &path, const std::vector<ScenarioResult> &results) {
  constexpr double kPanelHeight = 420;
  constexpr double kWidth = 940;
  const double legend_top = 60 + kPanelHeight * static_cast<double>(results.size());
  const double height = legend_top + 90;
  std::ofstream out(path);
  out << "<?xml version='1.0' encoding='UTF-8'?>\n"
      << "<svg xmlns='http://www.w3.org/2000/svg' width='" << num(kWidth) << "' height='"
      << num(height) << "' viewBox='0 0 " << num(kWidth) << " " << num(height)
      << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n";
  text(out, kWidth / 2, 26, "Re-sequencing buffer size N vs part loss and goodput", "middle",
       "font-size='17' font-weight='bold'");
  text(out, kWidth / 2, 46,
       std::to_string(kParts) + " parts of " + std::to_string(kPartBytes) + " B offered at " +
           fmt("%.0f", 100 * kLoad) +
           " % of the summed path rate R; weighted striping, delay-aware for comparison",
       "middle", "font-size='13'");
  for (std::size_t i = 0; i < results.size(); ++i) {
    panel(out, results[i], 60 + kPanelHeight * static_cast<double>(i));
  }
  struct Entry {
    const char *label;
    const char *color;
    const char *dash;
    bool square;
    bool marker;
  };
  const std::vector<Entry> entries{
      {"part loss, weighted (left axis)", kWeightedLoss, "", false, true},
      {"part loss, delay-aware (left)", kAwareLoss, "", true, true},
      {"expected loss, weighted: fluid model (left)", kModelLoss, "6,4", false, false},
      {"goodput / R, weighted (right axis)", kWeightedGoodput, "", false, true},
      {"goodput / R, delay-aware (right)", kAwareGoodput, "5,3", true, true},
      {"N chosen by sizeFor()", kSizeFor, "", false, false},
      {"baseline N = 4 x sizeFor", kBaseline, "8,3,2,3", false, false},
      {"model step L_j (slowest-path lead)", "#777", "2,3", false, false},
  };
  out << "<rect x='60' y='" << num(legend_top) << "' width='820' height='80' fill='white' "
      << "stroke='#999'/>\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry &e = entries[i];
    const double ex = 75 + 410 * static_cast<double>(i % 2);
    const double ey = legend_top + 16 + 18 * static_cast<double>(i / 2);
    const std::string style =
        std::string("stroke='") + e.color + "' stroke-width='2'" +
        (*e.dash != 0 ? std::string(" stroke-dasharray='") + e.dash + "'" : std::string());
    line(out, ex, ey - 4, ex + 36, ey - 4, style.c_str());
    if (e.marker) {
      markers(out, {{ex + 18, ey - 4}}, e.color, e.square);
    }
    text(out, ex + 44, ey, e.label, "start");
  }
  out << "</svg>\n";
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir(argc > 1 ? argv[1] : "bench");
  try {
    std::filesystem::create_directories(dir);
    const std::vector<Scenario> scenarios{
        {.id = "A",
         .title = "2 paths, 40 Mbit/s + 5 ms and 20 Mbit/s + 25 ms",
         .paths = {{.rate_bytes_per_s = 5e6, .delay = 5ms},
                   {.rate_bytes_per_s = 2.5e6, .delay = 25ms}}},
        {.id = "B",
         .title = "3 paths, 20 Mbit/s each, + 5 / 15 / 25 ms",
         .paths = {{.rate_bytes_per_s = 2.5e6, .delay = 5ms},
                   {.rate_bytes_per_s = 2.5e6, .delay = 15ms},
                   {.rate_bytes_per_s = 2.5e6, .delay = 25ms}}},
    };
    std::vector<ScenarioResult> results;
    std::vector<std::string> problems;
    for (const Scenario &scenario : scenarios) {
      results.push_back(runScenario(scenario));
      printScenario(results.back());
      for (auto &problem : check(results.back())) {
        problems.push_back(std::move(problem));
      }
    }
    writeCsv(dir / "resequencing.csv", results);
    writeSvg(dir / "resequencing.svg", results);
    std::cout << "\nwrote " << (dir / "resequencing.csv").string() << " and "
              << (dir / "resequencing.svg").string() << "\n";
    if (!problems.empty()) {
      for (const auto &problem : problems) {
        std::cerr << "inconsistent: " << problem << "\n";
      }
      return 1;
    }
    std::cout << "consistent: loss non-increasing in N, zero at sizeFor's N and in the "
                 "baseline, matching the model away from its steps\n";
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "resequencing_bench: " << e.what() << "\n";
    return 2;
  }
}

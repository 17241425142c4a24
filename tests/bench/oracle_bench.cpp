// oracle_bench — the path oracle's one-hop table (osr::OneHopTable) at 100,
// 1,000 and 10,000 routers: how long building it from a whole measurement
// set takes, how fast queries are, and what it weighs (docs/oracle.md).
//
//   oracle_bench [DIR]   writes DIR/oracle.csv (default DIR: bench)
//
// Measurement sets are synthetic and seeded (the same every run): routers on
// a 100 x 100 ms plane, delay(a,b) = distance x a random factor in [0.8, 1.4)
// + 0.2 ms (asymmetric, so one-hop detours often beat the direct path), rate
// 1-125 MB/s (1 % unknown), loss 0-2 % (2 % of the pairs lost outright), 32
// groups. 100 and 1,000 routers: a full mesh, every router reports all the
// others. 10,000 routers: the bounded-degree design of docs/oracle.md, every
// router reports 256 random peers (2.56 M pairs; a full mesh would be 10^8).
//
// Per size:
//   build    every router's REPORT into an empty table, then rebuild() (the
//            per-dst index);
//   rebuild  rebuild() alone, on that table;
//   refresh  every router reports again (new values, known pairs: in place);
//   query    median and p99 of single queries (k = 3) over random (src, dst)
//            pairs, per objective;
//   memory   the table's own accounting (memoryBytes()) and the RSS growth
//            while the first table was built.
// Baseline, same run: the raw measurements without the table — a dense
// matrix (100, 1,000: n^2 cells of 12 bytes, filled from the same reports) or,
// at 10,000, the reports kept as per-router lists sorted by peer; a query is
// a brute-force scan of every router as the relay (matrix lookups, or two
// binary searches).
//
// Exits non-zero only on an inconsistency: a table answer (relays, their
// delay and rate, the direct path) that differs from the brute-force one.
// The goals (1,000-router build well under 1 s, queries under 100 us) are
// printed as met or missed, not enforced: the machines are shared.
#include "bench_stats.hpp"
#include "osr/one_hop_table.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using nvbox::osr::Endpoint;
using nvbox::osr::Nanos;
using nvbox::osr::OneHopTable;
namespace oracle = nvbox::osr::oracle;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kGroups = 32;
constexpr std::size_t kSparseDegree = 256;
constexpr std::size_t kK = 3;
constexpr Nanos kReportAt = 1s;
constexpr Nanos kQueryAt = kReportAt + 1ms;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::size_t rssBytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0;
  std::size_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto at = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(at, v.size() - 1)];
}

struct Network {
  std::size_t n = 0;
  std::size_t degree = 0; // peers each router reports
  std::vector<Endpoint> endpoints;
  std::vector<std::string> groups;
  // Per router, its report, sorted by peer index; peerIndex[i][j] is the
  // index of reports[i][j].peer.
  std::vector<std::vector<oracle::ReportEntry>> reports;
  std::vector<std::vector<std::uint32_t>> peerIndex;
  [[nodiscard]] std::size_t pairs() const {
    std::size_t total = 0;
    for (const auto &r : reports) {
      total += r.size();
    }
    return total;
  }
};

Network makeNetwork(std::size_t n, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coord(0, 100);
  std::uniform_real_distribution<double> factor(0.8, 1.4);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<std::uint64_t> rate(1'000'000, 125'000'000);
  std::uniform_int_distribution<int> smallLoss(0, 200);
  Network net;
  net.n = n;
  net.degree = n <= 1000 ? n - 1 : kSparseDegree;
  std::vector<double> x(n);
  std::vector<double> y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = coord(rng);
    y[i] = coord(rng);
    net.endpoints.push_back(
        Endpoint{.addr = 0x0A000000U + static_cast<std::uint32_t>(i + 1), .port = 7400});
    net.groups.push_back("g" + std::to_string(i % kGroups));
  }
  net.reports.resize(n);
  net.peerIndex.resize(n);
  std::vector<std::uint32_t> all(n);
  std::iota(all.begin(), all.end(), 0U);
  for (std::size_t i = 0; i < n; ++i) {
    auto &peers = net.peerIndex[i];
    if (net.degree == n - 1) {
      for (std::uint32_t j = 0; j < n; ++j) {
        if (j != i) {
          peers.push_back(j);
        }
      }
    } else {
      // A partial Fisher-Yates shuffle: degree distinct peers, not i.
      for (std::size_t t = 0; peers.size() < net.degree; ++t) {
        std::uniform_int_distribution<std::size_t> pick(t, n - 1);
        std::swap(all[t], all[pick(rng)]);
        if (all[t] != i) {
          peers.push_back(all[t]);
        }
      }
      std::sort(peers.begin(), peers.end());
    }
    for (const std::uint32_t j : peers) {
      const double dist = std::hypot(x[i] - x[j], y[i] - y[j]);
      const double u = unit(rng);
      net.reports[i].push_back(oracle::ReportEntry{
          .peer = net.endpoints[j],
          .loss = u < 0.02 ? oracle::kLossScale : static_cast<std::uint16_t>(smallLoss(rng)),
          .delay_us = static_cast<std::uint32_t>(dist * 1000 * factor(rng) + 200),
          .rate = unit(rng) < 0.01 ? 0 : rate(rng)});
    }
  }
  return net;
}

// The same measurements with new values (a second round of reports).
void perturb(Network &net, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> jitter(-50, 50);
  for (auto &report : net.reports) {
    for (auto &e : report) {
      e.delay_us = static_cast<std::uint32_t>(
          std::max<std::int64_t>(1, static_cast<std::int64_t>(e.delay_us) + jitter(rng)));
    }
  }
}

void ingest(OneHopTable &table, const Network &net, Nanos at) {
  for (std::size_t i = 0; i < net.n; ++i) {
    if (!table.report(net.endpoints[i], net.groups[i], net.reports[i], at)) {
      throw std::runtime_error("the table refused a report");
    }
  }
}

// --- the baseline: raw measurements, brute-force queries ------------------

struct RawCell {
  std::uint32_t delay_us = 0;
  float rate = 0;
  std::uint16_t loss = 0;
  bool present = false;
};
static_assert(sizeof(RawCell) == 12);

struct Candidate {
  std::uint32_t relay; // router index
  std::uint32_t tableId;
  std::uint64_t delay_us;
  float rate;
};

class Baseline {
public:
  Baseline(const Network &net, const OneHopTable &table)
      : net_(net), dense_(net.degree == net.n - 1) {
    for (std::size_t i = 0; i < net.n; ++i) {
      tableId_.push_back(*table.find(net.endpoints[i]));
    }
  }

  // Copies the reports into the raw store: the baseline of "build".
  void build() {
    if (dense_) {
      matrix_.assign(net_.n * net_.n, RawCell{});
      for (std::size_t i = 0; i < net_.n; ++i) {
        const auto &report = net_.reports[i];
        for (std::size_t j = 0; j < report.size(); ++j) {
          const auto &e = report[j];
          matrix_[i * net_.n + net_.peerIndex[i][j]] =
              RawCell{e.delay_us, static_cast<float>(e.rate), e.loss, true};
        }
      }
    } else {
      lists_.assign(net_.n, {});
      for (std::size_t i = 0; i < net_.n; ++i) {
        const auto &report = net_.reports[i];
        auto &list = lists_[i];
        list.reserve(report.size());
        for (std::size_t j = 0; j < report.size(); ++j) {
          const auto &e = report[j];
          list.push_back({net_.peerIndex[i][j],
                          RawCell{e.delay_us, static_cast<float>(e.rate), e.loss, true}});
        }
      }
    }
  }

  [[nodiscard]] std::size_t memoryBytes() const {
    std::size_t bytes = matrix_.capacity() * sizeof(RawCell);
    for (const auto &list : lists_) {
      bytes += list.capacity() * sizeof(list[0]) + sizeof(list);
    }
    return bytes;
  }

  [[nodiscard]] const char *name() const {
    return dense_ ? "dense n^2 matrix, scan all relays" : "sorted report lists, scan all relays";
  }

  oracle::Answer query(std::uint32_t s, std::uint32_t d, std::size_t k, oracle::Objective obj) {
    oracle::Answer a;
    a.status = oracle::AnswerStatus::Ok;
    if (const RawCell *direct = at(s, d); direct && direct->loss < oracle::kLossScale) {
      a.direct_known = true;
      a.direct_delay_us = direct->delay_us;
    }
    scratch_.clear();
    for (std::uint32_t r = 0; r < net_.n; ++r) {
      if (r == s || r == d) {
        continue;
      }
      const RawCell *c1 = at(s, r);
      if (c1 == nullptr || c1->loss >= oracle::kLossScale) {
        continue;
      }
      const RawCell *c2 = at(r, d);
      if (c2 == nullptr || c2->loss >= oracle::kLossScale) {
        continue;
      }
      const float rate = std::min(c1->rate, c2->rate);
      if (obj == oracle::Objective::Rate && !(rate > 0)) {
        continue;
      }
      scratch_.push_back(
          Candidate{r, tableId_[r], std::uint64_t{c1->delay_us} + c2->delay_us, rate});
    }
    const auto byDelay = [](const Candidate &x, const Candidate &y) {
      return x.delay_us != y.delay_us ? x.delay_us < y.delay_us : x.tableId < y.tableId;
    };
    const auto byRate = [](const Candidate &x, const Candidate &y) {
      if (x.rate != y.rate) {
        return x.rate > y.rate;
      }
      return x.delay_us != y.delay_us ? x.delay_us < y.delay_us : x.tableId < y.tableId;
    };
    std::size_t chosen = 0;
    if (obj == oracle::Objective::Disjoint) {
      std::sort(scratch_.begin(), scratch_.end(), byDelay);
      for (const Candidate &c : scratch_) {
        if (chosen == k) {
          break;
        }
        bool taken = false;
        for (std::size_t x = 0; x < chosen; ++x) {
          taken = taken || net_.groups[scratch_[x].relay] == net_.groups[c.relay];
        }
        if (!taken) {
          scratch_[chosen++] = c;
        }
      }
    } else {
      chosen = std::min(k, scratch_.size());
      const auto middle = scratch_.begin() + static_cast<std::ptrdiff_t>(chosen);
      if (obj == oracle::Objective::Rate) {
        std::partial_sort(scratch_.begin(), middle, scratch_.end(), byRate);
      } else {
        std::partial_sort(scratch_.begin(), middle, scratch_.end(), byDelay);
      }
    }
    a.count = static_cast<std::uint8_t>(chosen);
    for (std::size_t x = 0; x < chosen; ++x) {
      a.relays[x].relay = net_.endpoints[scratch_[x].relay];
      a.relays[x].delay_us = static_cast<std::uint32_t>(scratch_[x].delay_us);
      a.relays[x].rate = static_cast<std::uint64_t>(scratch_[x].rate);
    }
    return a;
  }

private:
  const RawCell *at(std::uint32_t from, std::uint32_t to) const {
    if (dense_) {
      const RawCell &c = matrix_[std::size_t{from} * net_.n + to];
      return c.present ? &c : nullptr;
    }
    const auto &list = lists_[from];
    const auto it =
        std::lower_bound(list.begin(), list.end(), to,
                         [](const auto &entry, std::uint32_t id) { return entry.first < id; });
    return it != list.end() && it->first == to ? &it->second : nullptr;
  }

  const Network &net_;
  bool dense_;
  std::vector<std::uint32_t> tableId_;
  std::vector<RawCell> matrix_;
  std::vector<std::vector<std::pair<std::uint32_t, RawCell>>> lists_;
  std::vector<Candidate> scratch_;
};

bool sameAnswer(const oracle::Answer &table, const oracle::Answer &brute) {
  if (table.status != oracle::AnswerStatus::Ok || table.count != brute.count ||
      table.direct_known != brute.direct_known ||
      (table.direct_known && table.direct_delay_us != brute.direct_delay_us)) {
    return false;
  }
  for (std::size_t x = 0; x < table.count; ++x) {
    const auto &t = table.relays[x];
    const auto &b = brute.relays[x];
    if (!(t.relay == b.relay) || t.delay_us != b.delay_us || t.rate != b.rate) {
      return false;
    }
  }
  return true;
}

// --- the run ----------------------------------------------------------------

struct Figure {
  std::size_t routers;
  std::string metric;    // build_s, rebuild_s, refresh_s, query_median_us, ...
  std::string objective; // for queries; "" otherwise
  double table;
  double baseline; // NaN: none
  std::string unit;
};

struct SizeResult {
  std::vector<Figure> figures;
  std::size_t mismatches = 0;
  std::size_t queries = 0;
  double emptyAnswers = 0; // share of table answers with no relay (delay objective)
};

const char *objectiveName(oracle::Objective o) {
  switch (o) {
  case oracle::Objective::Delay:
    return "delay";
  case oracle::Objective::Rate:
    return "rate";
  case oracle::Objective::Disjoint:
    return "disjoint";
  }
  return "?";
}

SizeResult runSize(std::size_t n, int buildReps, std::size_t queries) {
  SizeResult result;
  Network net = makeNetwork(n, static_cast<std::uint32_t>(n) * 7919U);
  const std::size_t pairs = net.pairs();
  const OneHopTable::Config config{.max_age = 10s, .max_members = 16384};
  const auto add = [&](std::string metric, std::string objective, double table, double baseline,
                       std::string unit) {
    result.figures.push_back(
        Figure{n, std::move(metric), std::move(objective), table, baseline, std::move(unit)});
  };

  // Build: the first one also measures the RSS growth.
  ::malloc_trim(0);
  const std::size_t rssBefore = rssBytes();
  auto table = std::make_unique<OneHopTable>(config);
  std::vector<double> build;
  std::vector<double> rebuild;
  {
    const auto start = Clock::now();
    ingest(*table, net, kReportAt);
    table->rebuild();
    build.push_back(secondsSince(start));
  }
  const std::size_t rssTable = rssBytes() - std::min(rssBytes(), rssBefore);
  for (int rep = 1; rep < buildReps; ++rep) {
    table = std::make_unique<OneHopTable>(config);
    const auto start = Clock::now();
    ingest(*table, net, kReportAt);
    const auto indexStart = Clock::now();
    table->rebuild();
    rebuild.push_back(secondsSince(indexStart));
    build.push_back(secondsSince(start));
  }
  for (int rep = 0; rep < buildReps; ++rep) {
    const auto start = Clock::now();
    table->rebuild();
    rebuild.push_back(secondsSince(start));
  }

  Baseline baseline(net, *table);
  const std::size_t rssBeforeBaseline = rssBytes();
  const auto baselineBuild = nvbox::test::repeat(buildReps, [&] {
    const auto start = Clock::now();
    baseline.build();
    return secondsSince(start);
  });
  const std::size_t rssBaseline = rssBytes() - std::min(rssBytes(), rssBeforeBaseline);

  add("build_s", "", nvbox::test::median(build), nvbox::test::median(baselineBuild), "s");
  add("rebuild_index_s", "", nvbox::test::median(rebuild), NAN, "s");

  // Refresh: every router reports again, new values for known pairs.
  Network next = net;
  perturb(next, static_cast<std::uint32_t>(n) + 17U);
  const auto refresh = nvbox::test::repeat(buildReps, [&] {
    const auto start = Clock::now();
    ingest(*table, next, kReportAt);
    return secondsSince(start);
  });
  add("refresh_s", "", nvbox::test::median(refresh), NAN, "s");
  if (table->counters().rebuilds != static_cast<std::uint64_t>(buildReps) + 1) {
    // A refresh of known pairs must not dirty the index.
    throw std::runtime_error("a refresh of known pairs rebuilt the index");
  }
  ingest(*table, net, kReportAt); // back to the values the baseline holds

  add("memory_bytes", "", static_cast<double>(table->memoryBytes()),
      static_cast<double>(baseline.memoryBytes()), "B");
  add("memory_bytes_per_pair", "",
      static_cast<double>(table->memoryBytes()) / static_cast<double>(pairs),
      static_cast<double>(baseline.memoryBytes()) / static_cast<double>(pairs), "B");
  add("rss_growth_bytes", "", static_cast<double>(rssTable), static_cast<double>(rssBaseline), "B");

  std::mt19937_64 rng(n + 99);
  std::uniform_int_distribution<std::uint32_t> pick(0, static_cast<std::uint32_t>(n - 1));
  std::vector<std::pair<std::uint32_t, std::uint32_t>> pairsToAsk;
  while (pairsToAsk.size() < queries) {
    const auto s = pick(rng);
    const auto d = pick(rng);
    if (s != d) {
      pairsToAsk.emplace_back(s, d);
    }
  }
  std::size_t empty = 0;
  for (const auto objective :
       {oracle::Objective::Delay, oracle::Objective::Rate, oracle::Objective::Disjoint}) {
    std::vector<double> tableUs;
    std::vector<double> bruteUs;
    tableUs.reserve(queries);
    bruteUs.reserve(queries);
    for (const auto &[s, d] : pairsToAsk) {
      auto start = Clock::now();
      const oracle::Answer a =
          table->query(net.endpoints[s], net.endpoints[d], kK, objective, kQueryAt);
      tableUs.push_back(1e6 * secondsSince(start));
      start = Clock::now();
      const oracle::Answer b = baseline.query(s, d, kK, objective);
      bruteUs.push_back(1e6 * secondsSince(start));
      result.mismatches += sameAnswer(a, b) ? 0U : 1U;
      empty += objective == oracle::Objective::Delay && a.count == 0 ? 1U : 0U;
    }
    result.queries += queries;
    add("query_median_us", objectiveName(objective), nvbox::test::median(tableUs),
        nvbox::test::median(bruteUs), "us");
    add("query_p99_us", objectiveName(objective), percentile(tableUs, 0.99),
        percentile(bruteUs, 0.99), "us");
  }
  result.emptyAnswers = static_cast<double>(empty) / static_cast<double>(queries);
  add("pairs", "", static_cast<double>(pairs), NAN, "");
  add("degree", "", static_cast<double>(net.degree), NAN, "");
  return result;
}

std::string show(double v, const std::string &unit) {
  char buf[64];
  if (std::isnan(v)) {
    return "-";
  }
  if (unit == "s") {
    std::snprintf(buf, sizeof buf, "%.4f s", v);
  } else if (unit == "us") {
    std::snprintf(buf, sizeof buf, "%.2f us", v);
  } else if (unit == "B") {
    if (v >= 1 << 20) {
      std::snprintf(buf, sizeof buf, "%.1f MiB", v / (1 << 20));
    } else if (v >= 4096) {
      std::snprintf(buf, sizeof buf, "%.1f KiB", v / 1024);
    } else {
      std::snprintf(buf, sizeof buf, "%.1f B", v);
    }
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir(argc > 1 ? argv[1] : "bench");
  try {
    std::filesystem::create_directories(dir);
    struct Size {
      std::size_t n;
      int reps;
      std::size_t queries;
    };
    const std::vector<Size> sizes{{100, 20, 20000}, {1000, 5, 10000}, {10000, 3, 3000}};
    std::vector<Figure> figures;
    std::size_t mismatches = 0;
    bool goalsMet = true;
    const auto total = Clock::now();
    for (const Size &size : sizes) {
      const auto start = Clock::now();
      const SizeResult r = runSize(size.n, size.reps, size.queries);
      const bool sparse = size.n > 1000;
      std::printf("\n== %zu routers: %s; k = %zu; %zu queries per objective; baseline: %s "
                  "(%.1f s)\n",
                  size.n, sparse ? "bounded degree, 256 reported peers each" : "full mesh", kK,
                  size.queries,
                  sparse ? "sorted report lists, brute force" : "dense matrix, brute force",
                  secondsSince(start));
      std::printf("   %-22s %-9s %16s %16s\n", "figure", "objective", "one-hop table", "baseline");
      for (const Figure &f : r.figures) {
        std::printf("   %-22s %-9s %16s %16s\n", f.metric.c_str(), f.objective.c_str(),
                    show(f.table, f.unit).c_str(), show(f.baseline, f.unit).c_str());
        if (f.routers == 1000 && f.metric == "build_s" && f.table >= 1.0) {
          goalsMet = false;
        }
        if (f.metric == "query_p99_us" && f.table >= 100) {
          goalsMet = false;
        }
        figures.push_back(f);
      }
      std::printf("   answers with no relay (delay): %.1f %%; table vs brute force: %zu of %zu "
                  "differ\n",
                  100 * r.emptyAnswers, r.mismatches, r.queries);
      mismatches += r.mismatches;
    }
    const std::filesystem::path csv = dir / "oracle.csv";
    std::ofstream out(csv);
    out << "routers,metric,objective,table,baseline,unit\n";
    for (const Figure &f : figures) {
      out << f.routers << ',' << f.metric << ',' << f.objective << ',' << f.table << ',';
      if (!std::isnan(f.baseline)) {
        out << f.baseline;
      }
      out << ',' << f.unit << '\n';
    }
    if (!out) {
      throw std::runtime_error("cannot write " + csv.string());
    }
    std::printf("\nwrote %s (%.1f s in all)\n", csv.c_str(), secondsSince(total));
    std::printf("goals (1,000-router build < 1 s, every query p99 < 100 us): %s\n",
                goalsMet ? "met" : "MISSED");
    if (mismatches != 0) {
      std::cerr << "inconsistent: " << mismatches
                << " table answers differ from the brute-force ones\n";
      return 1;
    }
    std::cout << "consistent: every table answer equals the brute-force one\n";
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "oracle_bench: " << e.what() << "\n";
    return 2;
  }
}

// OneHopTable: relay selection against brute force over the raw matrix on
// random graphs, with planted triangle-inequality violations, missing pairs,
// stale and lost measurements; and the table's bookkeeping.
#include "osr/one_hop_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;
using oracle::Objective;

struct Raw {
  bool present = false;
  std::uint32_t delay = 0;
  std::uint64_t rate = 0;
  std::uint16_t loss = 0;
  Nanos at{};
};

Endpoint ep(std::size_t i) {
  return Endpoint{static_cast<std::uint32_t>(0x0A000000 + i + 1), 7400};
}

struct World {
  std::size_t n;
  std::vector<std::vector<Raw>> m;
  std::vector<std::string> groups;
};

// n members; each pair measured with probability `density`; a few pairs
// stale, a few lost; some direct paths made slow so that detours beat them.
World randomWorld(std::size_t n, double density, std::mt19937 &rng, OneHopTable &table, Nanos now,
                  Nanos maxAge) {
  World w{n, std::vector<std::vector<Raw>>(n, std::vector<Raw>(n)), {}};
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<std::uint32_t> delay(100, 50'000);
  std::uniform_int_distribution<std::uint64_t> rate(0, 8); // coarse: many ties
  for (std::size_t i = 0; i < n; ++i) {
    w.groups.push_back(u(rng) < 0.2 ? "" : "g" + std::to_string(rng() % 4));
  }
  for (std::size_t s = 0; s < n; ++s) {
    std::vector<oracle::ReportEntry> stale;
    std::vector<oracle::ReportEntry> fresh;
    for (std::size_t d = 0; d < n; ++d) {
      if (d == s || u(rng) > density) {
        continue;
      }
      Raw r{true, delay(rng), rate(rng) * 1'000'000, 0, now};
      if (u(rng) < 0.1) {
        r.delay = 900'000; // a slow direct path: detours beat it
      }
      if (u(rng) < 0.05) {
        r.loss = oracle::kLossScale; // unreachable
      } else if (u(rng) < 0.2) {
        r.loss = static_cast<std::uint16_t>(rng() % 5000);
      }
      const oracle::ReportEntry e{ep(d), r.loss, r.delay, r.rate};
      if (u(rng) < 0.1) {
        r.at = now - maxAge - 1ms;
        stale.push_back(e);
      } else {
        fresh.push_back(e);
      }
      w.m[s][d] = r;
    }
    // Stale entries first (an old report), fresh ones in a later one: a
    // report keeps the pairs it does not mention.
    EXPECT_TRUE(table.report(ep(s), w.groups[s], stale, now - maxAge - 1ms));
    EXPECT_TRUE(table.report(ep(s), w.groups[s], fresh, now));
  }
  return w;
}

struct Expected {
  std::size_t relay;
  std::uint64_t delay;
  std::uint64_t rate;
};

// Every admissible relay, computed from the raw matrix.
std::vector<Expected> candidates(const World &w, std::size_t s, std::size_t d, Nanos now,
                                 Nanos maxAge, bool needRate) {
  std::vector<Expected> out;
  const auto ok = [&](const Raw &r) {
    return r.present && now - r.at <= maxAge && r.loss < oracle::kLossScale;
  };
  for (std::size_t r = 0; r < w.n; ++r) {
    if (r == s || r == d || !ok(w.m[s][r]) || !ok(w.m[r][d])) {
      continue;
    }
    const std::uint64_t rate = std::min(w.m[s][r].rate, w.m[r][d].rate);
    if (needRate && rate == 0) {
      continue;
    }
    out.push_back({r, std::uint64_t{w.m[s][r].delay} + w.m[r][d].delay, rate});
  }
  return out;
}

class OneHopRandom : public ::testing::TestWithParam<std::tuple<std::size_t, double>> {};

TEST_P(OneHopRandom, DelayAndRateMatchBruteForce) {
  const auto [n, density] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(static_cast<double>(n) * 1000 + density * 100));
  const Nanos maxAge = 10s;
  const Nanos now = 100s;
  OneHopTable table({.max_age = maxAge});
  const World w = randomWorld(n, density, rng, table, now, maxAge);
  std::size_t violations = 0;
  for (int q = 0; q < 200; ++q) {
    const std::size_t s = rng() % n;
    std::size_t d = rng() % n;
    if (d == s) {
      d = (d + 1) % n;
    }
    const std::size_t k = 1 + rng() % 16;
    // delay
    auto all = candidates(w, s, d, now, maxAge, false);
    std::vector<std::uint64_t> want;
    for (const auto &c : all) {
      want.push_back(c.delay);
    }
    std::sort(want.begin(), want.end());
    want.resize(std::min(k, want.size()));
    const oracle::Answer a = table.query(ep(s), ep(d), k, Objective::Delay, now);
    ASSERT_EQ(a.status, oracle::AnswerStatus::Ok);
    ASSERT_EQ(a.count, want.size());
    const Raw &direct = w.m[s][d];
    const bool directFresh =
        direct.present && now - direct.at <= maxAge && direct.loss < oracle::kLossScale;
    EXPECT_EQ(a.direct_known, directFresh);
    for (std::size_t i = 0; i < a.count; ++i) {
      EXPECT_EQ(a.relays[i].delay_us, want[i]);
      const auto r = std::find_if(all.begin(), all.end(), [&](const Expected &e) {
        return ep(e.relay) == a.relays[i].relay;
      });
      ASSERT_NE(r, all.end()) << "an inadmissible relay was chosen";
      EXPECT_EQ(r->delay, a.relays[i].delay_us);
      EXPECT_EQ(a.relays[i].beats_direct, directFresh && r->delay < direct.delay);
      violations += a.relays[i].beats_direct ? 1U : 0U;
    }
    // rate
    all = candidates(w, s, d, now, maxAge, true);
    std::vector<std::uint64_t> wantRate;
    for (const auto &c : all) {
      wantRate.push_back(c.rate);
    }
    std::sort(wantRate.rbegin(), wantRate.rend());
    wantRate.resize(std::min(k, wantRate.size()));
    const oracle::Answer b = table.query(ep(s), ep(d), k, Objective::Rate, now);
    ASSERT_EQ(b.count, wantRate.size());
    for (std::size_t i = 0; i < b.count; ++i) {
      EXPECT_EQ(b.relays[i].rate, wantRate[i]);
      EXPECT_GT(b.relays[i].rate, 0U);
    }
  }
  if (density > 0.5) {
    EXPECT_GT(violations, 0U) << "the planted slow direct paths must show";
  }
}

// Disjoint: the greedy answer has distinct groups and the least total delay
// of all k-subsets with distinct groups (brute force over subsets).
TEST_P(OneHopRandom, DisjointIsOptimalAmongDistinctGroupSets) {
  const auto [n, density] = GetParam();
  if (n > 30) {
    GTEST_SKIP() << "subset enumeration is for small graphs";
  }
  std::mt19937 rng(static_cast<unsigned>(n + 7));
  const Nanos maxAge = 10s;
  const Nanos now = 100s;
  OneHopTable table({.max_age = maxAge});
  const World w = randomWorld(n, density, rng, table, now, maxAge);
  for (int q = 0; q < 100; ++q) {
    const std::size_t s = rng() % n;
    const std::size_t d = (s + 1 + rng() % (n - 1)) % n;
    const std::size_t k = 1 + rng() % 3;
    const auto all = candidates(w, s, d, now, maxAge, false);
    // Best total delay over subsets of size min(k, #groups) with distinct groups.
    std::optional<std::uint64_t> best;
    std::size_t bestSize = 0;
    const auto group = [&](std::size_t r) {
      return w.groups[r].empty() ? "#" + std::to_string(r) : w.groups[r];
    };
    const std::size_t m = all.size();
    for (std::uint64_t mask = 0; mask < (1ULL << std::min<std::size_t>(m, 20)); ++mask) {
      if (static_cast<std::size_t>(__builtin_popcountll(mask)) > k) {
        continue;
      }
      std::set<std::string> groups;
      std::uint64_t sum = 0;
      bool distinct = true;
      for (std::size_t i = 0; i < m && i < 20; ++i) {
        if ((mask >> i) & 1U) {
          distinct = distinct && groups.insert(group(all[i].relay)).second;
          sum += all[i].delay;
        }
      }
      const std::size_t size = groups.size();
      if (distinct && (size > bestSize || (size == bestSize && (!best || sum < *best)))) {
        best = sum;
        bestSize = size;
      }
    }
    if (m > 20) {
      continue; // enumeration truncated: skip the comparison
    }
    const oracle::Answer a = table.query(ep(s), ep(d), k, Objective::Disjoint, now);
    ASSERT_EQ(a.count, bestSize);
    std::set<std::string> seen;
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < a.count; ++i) {
      const auto r = std::find_if(all.begin(), all.end(), [&](const Expected &e) {
        return ep(e.relay) == a.relays[i].relay;
      });
      ASSERT_NE(r, all.end());
      EXPECT_TRUE(seen.insert(group(r->relay)).second) << "two relays of one group";
      sum += r->delay;
    }
    if (best) {
      EXPECT_EQ(sum, *best);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Graphs, OneHopRandom,
                         ::testing::Values(std::make_tuple(std::size_t{8}, 0.9),
                                           std::make_tuple(std::size_t{20}, 0.5),
                                           std::make_tuple(std::size_t{25}, 1.0),
                                           std::make_tuple(std::size_t{120}, 0.3),
                                           std::make_tuple(std::size_t{200}, 1.0)));

TEST(OneHopTable, TriangleViolationIsFlaggedAndStaleDataIgnored) {
  OneHopTable t({.max_age = 5s});
  const Endpoint s = ep(0), d = ep(1), r = ep(2);
  const std::vector<oracle::ReportEntry> fromS{{d, 0, 50'000, 1000}, {r, 0, 10'000, 500}};
  const std::vector<oracle::ReportEntry> fromR{{d, 0, 10'000, 2000}};
  ASSERT_TRUE(t.report(s, "a", fromS, 10s));
  ASSERT_TRUE(t.report(r, "b", fromR, 10s));
  auto a = t.query(s, d, 3, Objective::Delay, 11s);
  ASSERT_EQ(a.count, 1);
  EXPECT_EQ(a.relays[0].relay, r);
  EXPECT_EQ(a.relays[0].delay_us, 20'000U);
  EXPECT_TRUE(a.relays[0].beats_direct);
  EXPECT_EQ(a.relays[0].rate, 500U);
  EXPECT_EQ(a.relays[0].age_ms, 1000U);
  EXPECT_EQ(a.relays[0].group.view(), "b");
  EXPECT_EQ(a.direct_delay_us, 50'000U);
  // 6 s later everything is stale: no relay, no direct path.
  a = t.query(s, d, 3, Objective::Delay, 16s);
  EXPECT_EQ(a.count, 0);
  EXPECT_FALSE(a.direct_known);
  // Unknown members.
  EXPECT_EQ(t.query(ep(9), d, 1, Objective::Delay, 11s).status,
            oracle::AnswerStatus::UnknownSource);
  EXPECT_EQ(t.query(d, s, 1, Objective::Delay, 11s).status,
            oracle::AnswerStatus::UnknownSource); // d never reported itself
  EXPECT_EQ(t.query(s, ep(9), 1, Objective::Delay, 11s).status,
            oracle::AnswerStatus::UnknownDestination);
}

// Found by oracle_wire_fuzz: a rate near 2^64 rounded to 2^64 as a float and
// did not convert back to uint64 (undefined behaviour).
TEST(OneHopTable, HugeRatesAreCappedNotUndefined) {
  OneHopTable table;
  const std::uint64_t huge = ~std::uint64_t{0} - 0xF0;
  const std::vector<oracle::ReportEntry> from0{{ep(1), 0, 1000, huge}, {ep(2), 0, 9000, huge}};
  const std::vector<oracle::ReportEntry> from1{{ep(2), 0, 1000, huge}};
  ASSERT_TRUE(table.report(ep(0), "", from0, 1s));
  ASSERT_TRUE(table.report(ep(1), "", from1, 1s));
  const auto a = table.query(ep(0), ep(2), 1, Objective::Rate, 1s);
  ASSERT_EQ(a.count, 1);
  EXPECT_EQ(a.relays[0].rate, std::uint64_t{1} << 63);
  EXPECT_TRUE(a.direct_known);
  EXPECT_EQ(a.direct_rate, std::uint64_t{1} << 63);
}

TEST(OneHopTable, RefreshingKnownPairsNeedsNoRebuildAndMemberLimitHolds) {
  OneHopTable t({.max_age = 5s, .max_members = 3});
  const std::vector<oracle::ReportEntry> e{{ep(1), 0, 10, 1}, {ep(2), 0, 10, 1}};
  ASSERT_TRUE(t.report(ep(0), "", e, 1s));
  t.query(ep(0), ep(1), 1, Objective::Delay, 1s);
  const auto rebuilds = t.counters().rebuilds;
  ASSERT_TRUE(t.report(ep(0), "", e, 2s));
  t.query(ep(0), ep(1), 1, Objective::Delay, 2s);
  EXPECT_EQ(t.counters().rebuilds, rebuilds);
  const std::vector<oracle::ReportEntry> more{{ep(3), 0, 10, 1}};
  EXPECT_FALSE(t.report(ep(0), "", more, 3s)); // a 4th member
  EXPECT_EQ(t.members(), 3U);
  EXPECT_EQ(t.pairs(), 2U);
  EXPECT_GT(t.memoryBytes(), 0U);
}

} // namespace
} // namespace nvbox::osr

#include "osr/one_hop_table.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace nvbox::osr {
namespace {

std::uint64_t keyOf(const Endpoint &ep) {
  return (std::uint64_t{ep.addr} << 16) | ep.port;
}

bool lost(std::uint16_t loss) {
  return loss >= oracle::kLossScale;
}

// Rates are kept as float. A reported rate near 2^64 would round up to
// 2^64, which no longer converts back to uint64 (undefined behaviour, found
// by oracle_wire_fuzz): they are capped at 2^63 bytes/s, exact in a float.
float storedRate(std::uint64_t rate) {
  return static_cast<float>(std::min<std::uint64_t>(rate, std::uint64_t{1} << 63));
}

std::uint16_t combinedLoss(std::uint16_t a, std::uint16_t b) {
  const std::uint32_t s = oracle::kLossScale;
  return static_cast<std::uint16_t>(a + b - (std::uint32_t{a} * b) / s);
}

} // namespace

std::optional<OneHopTable::MemberId> OneHopTable::find(const Endpoint &ep) const {
  const auto it = ids_.find(keyOf(ep));
  if (it == ids_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::optional<OneHopTable::MemberId> OneHopTable::intern(const Endpoint &ep) {
  if (const auto id = find(ep)) {
    return id;
  }
  if (members_.size() >= config_.max_members) {
    return std::nullopt;
  }
  const auto id = static_cast<MemberId>(members_.size());
  members_.push_back(Member{.endpoint = ep});
  rows_.emplace_back();
  ids_.emplace(keyOf(ep), id);
  dirty_ = true;
  return id;
}

std::uint32_t OneHopTable::msOf(Nanos t) const {
  const Nanos since = t - epoch_.value_or(t);
  if (since.count() <= 0) {
    return 0;
  }
  return static_cast<std::uint32_t>(
      std::min<std::int64_t>(since.count() / 1'000'000, std::numeric_limits<std::uint32_t>::max()));
}

bool OneHopTable::fresh(const Cell &c, std::uint32_t nowMs) const {
  const auto maxMs = static_cast<std::uint64_t>(config_.max_age.count() / 1'000'000);
  return nowMs >= c.at_ms ? nowMs - c.at_ms <= maxMs : true;
}

const OneHopTable::Cell *OneHopTable::cell(MemberId src, MemberId dst) const {
  const auto &row = rows_[src];
  const auto it = std::lower_bound(row.begin(), row.end(), dst,
                                   [](const Cell &c, MemberId id) { return c.peer < id; });
  return it != row.end() && it->peer == dst ? &*it : nullptr;
}

bool OneHopTable::report(const Endpoint &src, std::string_view group,
                         std::span<const oracle::ReportEntry> entries, Nanos now) {
  std::size_t unknown = find(src) ? 0U : 1U;
  for (const auto &e : entries) {
    unknown += find(e.peer) ? 0U : 1U;
  }
  if (members_.size() + unknown > config_.max_members) {
    ++counters_.refused;
    return false;
  }
  if (!epoch_) {
    epoch_ = now;
  }
  const MemberId s = *intern(src);
  for (const auto &e : entries) {
    intern(e.peer); // first: interning may move rows_ and members_
  }
  Member &m = members_[s];
  m.group.assign(group);
  m.last_report = now;
  m.reported = true;
  ++counters_.reports;
  const std::uint32_t at = msOf(now);
  auto &row = rows_[s];
  merge_.clear();
  for (const auto &e : entries) {
    const MemberId p = *find(e.peer);
    if (p == s) {
      continue; // a member does not measure itself
    }
    ++counters_.entries;
    const Cell c{p, e.delay_us, storedRate(e.rate), e.loss, 0, at};
    if (Cell *known = const_cast<Cell *>(cell(s, p))) {
      *known = c;
    } else {
      merge_.push_back(c);
    }
  }
  if (!merge_.empty()) {
    // New pairs: the row gains cells (the last value of a peer named twice
    // wins) and the per-dst index must be rebuilt.
    std::stable_sort(merge_.begin(), merge_.end(),
                     [](const Cell &a, const Cell &b) { return a.peer < b.peer; });
    std::size_t added = 0;
    for (std::size_t i = 0; i < merge_.size(); ++i) {
      if (i + 1 < merge_.size() && merge_[i + 1].peer == merge_[i].peer) {
        continue;
      }
      row.push_back(merge_[i]);
      ++added;
    }
    std::inplace_merge(row.begin(), row.end() - static_cast<std::ptrdiff_t>(added), row.end(),
                       [](const Cell &a, const Cell &b) { return a.peer < b.peer; });
    pairs_ += added;
    dirty_ = true;
  }
  return true;
}

void OneHopTable::rebuild() {
  const std::size_t n = members_.size();
  inStart_.assign(n + 1, 0);
  for (const auto &row : rows_) {
    for (const Cell &c : row) {
      ++inStart_[c.peer + 1];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    inStart_[i + 1] += inStart_[i];
  }
  in_.resize(pairs_);
  std::vector<std::uint32_t> fill(inStart_.begin(), inStart_.end() - 1);
  for (MemberId s = 0; s < n; ++s) {
    const auto &row = rows_[s];
    for (std::uint32_t pos = 0; pos < row.size(); ++pos) {
      in_[fill[row[pos].peer]++] = InRef{s, pos};
    }
  }
  dirty_ = false;
  ++counters_.rebuilds;
}

oracle::Answer OneHopTable::query(const Endpoint &src, const Endpoint &dst, std::size_t k,
                                  oracle::Objective objective, Nanos now) {
  oracle::Answer a;
  a.src = src;
  a.dst = dst;
  a.objective = objective;
  k = std::clamp<std::size_t>(k, 1, oracle::kMaxAnswer);
  const auto s = find(src);
  if (!s || !members_[*s].reported) {
    a.status = oracle::AnswerStatus::UnknownSource;
    return a;
  }
  const auto d = find(dst);
  if (!d || *d == *s) {
    a.status = oracle::AnswerStatus::UnknownDestination;
    return a;
  }
  if (dirty_) {
    rebuild();
  }
  const std::uint32_t nowMs = msOf(now);
  if (const Cell *direct = cell(*s, *d); direct && fresh(*direct, nowMs) && !lost(direct->loss)) {
    a.direct_known = true;
    a.direct_delay_us = direct->delay_us;
    a.direct_rate = static_cast<std::uint64_t>(direct->rate);
    a.direct_age_ms = nowMs - std::min(nowMs, direct->at_ms);
  }
  // Candidates: r with src→r (src's row) and r→dst (dst's index), merged by id.
  scratch_.clear();
  const auto &row = rows_[*s];
  std::size_t i = 0;
  std::size_t j = inStart_[*d];
  const std::size_t jEnd = inStart_[*d + 1];
  while (i < row.size() && j < jEnd) {
    const MemberId r1 = row[i].peer;
    const MemberId r2 = in_[j].src;
    if (r1 < r2) {
      ++i;
      continue;
    }
    if (r2 < r1) {
      ++j;
      continue;
    }
    const Cell &c1 = row[i];
    const Cell &c2 = rows_[r1][in_[j].pos];
    ++i;
    ++j;
    if (r1 == *d || !fresh(c1, nowMs) || !fresh(c2, nowMs) || lost(c1.loss) || lost(c2.loss)) {
      continue;
    }
    const float rate = std::min(c1.rate, c2.rate);
    if (objective == oracle::Objective::Rate && !(rate > 0)) {
      continue;
    }
    scratch_.push_back(Candidate{r1, std::uint64_t{c1.delay_us} + c2.delay_us, rate,
                                 combinedLoss(c1.loss, c2.loss),
                                 nowMs - std::min({nowMs, c1.at_ms, c2.at_ms})});
  }
  const auto byDelay = [](const Candidate &x, const Candidate &y) {
    return x.delay_us != y.delay_us ? x.delay_us < y.delay_us : x.relay < y.relay;
  };
  const auto byRate = [](const Candidate &x, const Candidate &y) {
    if (x.rate != y.rate) {
      return x.rate > y.rate;
    }
    return x.delay_us != y.delay_us ? x.delay_us < y.delay_us : x.relay < y.relay;
  };
  std::size_t chosen = 0;
  if (objective == oracle::Objective::Disjoint) {
    // Greedy in delay order, which is exact: a heap hands the candidates out
    // lazily, O(candidates + pops · log candidates) instead of a full sort
    // (usually a few pops find k groups).
    const auto later = [&byDelay](const Candidate &x, const Candidate &y) { return byDelay(y, x); };
    std::make_heap(scratch_.begin(), scratch_.end(), later);
    std::array<Candidate, oracle::kMaxAnswer> picked{};
    for (auto end = scratch_.end(); chosen < k && end != scratch_.begin(); --end) {
      std::pop_heap(scratch_.begin(), end, later);
      const Candidate &c = *(end - 1);
      const auto g = members_[c.relay].group.view();
      bool taken = false;
      for (std::size_t x = 0; x < chosen && !g.empty(); ++x) {
        taken = taken || members_[picked[x].relay].group.view() == g;
      }
      if (!taken) {
        picked[chosen++] = c;
      }
    }
    std::copy_n(picked.begin(), chosen, scratch_.begin());
  } else {
    chosen = std::min(k, scratch_.size());
    const auto middle = scratch_.begin() + static_cast<std::ptrdiff_t>(chosen);
    if (objective == oracle::Objective::Rate) {
      std::partial_sort(scratch_.begin(), middle, scratch_.end(), byRate);
    } else {
      std::partial_sort(scratch_.begin(), middle, scratch_.end(), byDelay);
    }
  }
  a.count = static_cast<std::uint8_t>(chosen);
  for (std::size_t x = 0; x < chosen; ++x) {
    const Candidate &c = scratch_[x];
    a.relays[x] =
        oracle::AnswerRelay{.relay = members_[c.relay].endpoint,
                            .beats_direct = a.direct_known && c.delay_us < a.direct_delay_us,
                            .delay_us = static_cast<std::uint32_t>(std::min<std::uint64_t>(
                                c.delay_us, std::numeric_limits<std::uint32_t>::max())),
                            .rate = static_cast<std::uint64_t>(c.rate),
                            .loss = c.loss,
                            .age_ms = c.age_ms,
                            .group = members_[c.relay].group};
  }
  return a;
}

void OneHopTable::forEach(Nanos now, const std::function<void(const Measurement &)> &visit) const {
  const std::uint32_t nowMs = msOf(now);
  for (MemberId s = 0; s < rows_.size(); ++s) {
    for (const Cell &c : rows_[s]) {
      visit(Measurement{.src = s,
                        .dst = c.peer,
                        .delay_us = c.delay_us,
                        .rate = static_cast<std::uint64_t>(c.rate),
                        .loss = c.loss,
                        .age = std::chrono::milliseconds(nowMs - std::min(nowMs, c.at_ms))});
    }
  }
}

std::size_t OneHopTable::memoryBytes() const {
  std::size_t bytes = sizeof(*this);
  bytes += members_.capacity() * sizeof(Member);
  bytes += rows_.capacity() * sizeof(std::vector<Cell>);
  for (const auto &row : rows_) {
    bytes += row.capacity() * sizeof(Cell);
  }
  bytes += inStart_.capacity() * sizeof(std::uint32_t) + in_.capacity() * sizeof(InRef);
  // unordered_map: a node (key, value, next pointer, cached hash) per member
  // plus the bucket array.
  bytes += ids_.size() * (sizeof(std::uint64_t) + sizeof(MemberId) + 2 * sizeof(void *)) +
           ids_.bucket_count() * sizeof(void *);
  bytes += scratch_.capacity() * sizeof(Candidate) + merge_.capacity() * sizeof(Cell);
  return bytes;
}

} // namespace nvbox::osr

// OneHopTable(MAX_AGE, MAX_MEMBERS) — the path oracle's measurement table and
// its relay selection (paper 4.1: the oracle names the intermediate routers
// of one-hop source routes).
//
// What it does: keeps the latest measurement of every (src, dst) member pair
// that some REPORT carried — one-way delay, available rate, loss — with the
// time it arrived, and answers query(src, dst, k, objective) with the best k
// relays r (r ≠ src, dst) for which both src→r and r→dst are measured, not
// lost outright, and fresh (younger than MAX_AGE); anything else excludes r.
//   delay:    lowest delay(src,r) + delay(r,dst); a relay that beats the
//             direct src→dst delay is a triangle-inequality violation and is
//             flagged (beats_direct);
//   rate:     highest min(rate(src,r), rate(r,dst)) (unknown rates, 0,
//             exclude r); ties by delay;
//   disjoint: k relays with pairwise distinct group labels (a member without
//             a label is a group of its own), lowest total delay: the best
//             relay of each group, then the k best of those (greedy is exact).
// Ties are broken by member id (first reported first), so answers are
// deterministic.
//
// Storage: per src a row of cells sorted by dst (20 bytes: dst, delay_us,
// rate as float — capped at 2^63 bytes/s —, loss, arrival in ms since the
// table's epoch), and per dst an
// index of (src, position in src's row) — 28 bytes per measured pair, dense
// or sparse alike. A query intersects src's row with dst's index, O(out(src)
// + in(dst)), then a partial sort for k (disjoint: a heap popped until k
// groups are found), and allocates nothing once its scratch space has grown. The
// index depends only on which pairs exist, not on their values: a REPORT
// that refreshes known pairs updates values in place; one that adds or drops
// pairs marks the index dirty and the next query rebuilds it (a counting
// sort, O(members + pairs)); rebuild() does it eagerly.
//
// Parameters: MAX_AGE, MAX_MEMBERS (new members beyond it are refused).
// Counters: reports, entries, refused (members), rebuilds.
// Threading: not thread-safe (queries use shared scratch space); one owner.
// Time is injected (`now`); only differences matter. Control-path code: may
// throw std::bad_alloc, nothing else.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/oracle_wire.hpp"
#include "osr/types.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nvbox::osr {

class OneHopTable {
public:
  using MemberId = std::uint32_t;
  struct Config {
    Nanos max_age = std::chrono::seconds(10);
    std::size_t max_members = 16384;
  };
  struct Member {
    Endpoint endpoint{};
    oracle::Group group{};
    Nanos last_report{};
    bool reported = false; // sent a report itself (else only named as a peer)
  };
  // One measured pair as the map export sees it.
  struct Measurement {
    MemberId src = 0;
    MemberId dst = 0;
    std::uint32_t delay_us = 0;
    std::uint64_t rate = 0;
    std::uint16_t loss = 0;
    Nanos age{};
  };
  struct Counters {
    std::uint64_t reports = 0;
    std::uint64_t entries = 0;
    std::uint64_t refused = 0;
    std::uint64_t rebuilds = 0;
  };

  OneHopTable() : OneHopTable(Config{}) {}
  explicit OneHopTable(const Config &config) : config_(config) {}

  // Records `src`'s measurements, received at `now`. A pair the report does
  // not mention keeps its older value (and ages out). False if src or a peer
  // would exceed MAX_MEMBERS (nothing of the report is kept then).
  bool report(const Endpoint &src, std::string_view group,
              std::span<const oracle::ReportEntry> entries, Nanos now);

  // The best k relays (k clamped to 1..kMaxAnswer).
  oracle::Answer query(const Endpoint &src, const Endpoint &dst, std::size_t k,
                       oracle::Objective objective, Nanos now);

  // Rebuilds the per-dst index now (the next query would otherwise).
  void rebuild();

  [[nodiscard]] std::size_t members() const { return members_.size(); }
  [[nodiscard]] const Member &member(MemberId id) const { return members_[id]; }
  [[nodiscard]] std::optional<MemberId> find(const Endpoint &ep) const;
  [[nodiscard]] std::size_t pairs() const { return pairs_; }
  // Every stored pair, fresh or not, in (src, dst) order.
  void forEach(Nanos now, const std::function<void(const Measurement &)> &visit) const;
  // Bytes held by the table (rows, index, members, id map; capacity, not size).
  [[nodiscard]] std::size_t memoryBytes() const;
  [[nodiscard]] const Counters &counters() const { return counters_; }
  [[nodiscard]] Nanos maxAge() const { return config_.max_age; }

private:
  struct Cell {
    MemberId peer;
    std::uint32_t delay_us;
    float rate;
    std::uint16_t loss;
    std::uint16_t reserved;
    std::uint32_t at_ms; // arrival, ms since epoch_
  };
  struct InRef {
    MemberId src;
    std::uint32_t pos; // index of the cell in rows_[src]
  };
  struct Candidate {
    MemberId relay;
    std::uint64_t delay_us;
    float rate;
    std::uint16_t loss;
    std::uint32_t age_ms;
  };
  static_assert(sizeof(Cell) == 20);

  std::optional<MemberId> intern(const Endpoint &ep);
  [[nodiscard]] std::uint32_t msOf(Nanos t) const;
  [[nodiscard]] bool fresh(const Cell &c, std::uint32_t nowMs) const;
  [[nodiscard]] const Cell *cell(MemberId src, MemberId dst) const;

  Config config_;
  std::optional<Nanos> epoch_;
  std::vector<Member> members_;
  std::unordered_map<std::uint64_t, MemberId> ids_;
  std::vector<std::vector<Cell>> rows_;
  std::vector<std::uint32_t> inStart_; // CSR offsets into in_, members+1
  std::vector<InRef> in_;
  bool dirty_ = false;
  std::size_t pairs_ = 0;
  std::vector<Candidate> scratch_;
  std::vector<Cell> merge_;
  Counters counters_;
};

} // namespace nvbox::osr

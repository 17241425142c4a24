// RecordingSink — a ResequencingSink for tests that records everything the
// buffer releases and checks the buffer's contract as it goes: every
// sequence number is released exactly once and in order, either delivered
// or reported lost.
#pragma once

#include "osr/resequencing_buffer.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace nvbox::osr::testing {

class RecordingSink final : public ResequencingSink {
public:
  struct Delivered {
    std::uint32_t seq = 0;
    std::uint8_t flags = 0;
    PathId path_id = 0;
    std::vector<std::uint8_t> payload;
  };
  struct Lost {
    std::uint32_t first = 0;
    std::uint32_t count = 0;
    LossCause cause = LossCause::Overflow;
    friend bool operator==(const Lost &, const Lost &) = default;
  };

  void deliver(const Part &part) override {
    expect(part.seq, 1);
    delivered.push_back(Delivered{.seq = part.seq,
                                  .flags = part.flags,
                                  .path_id = part.path_id,
                                  .payload = {part.payload.begin(), part.payload.end()}});
  }

  void lost(std::uint32_t first_seq, std::uint32_t count, LossCause cause) override {
    if (count == 0) {
      ++order_violations;
    }
    expect(first_seq, count);
    losses.push_back(Lost{.first = first_seq, .count = count, .cause = cause});
    switch (cause) {
    case LossCause::Overflow:
      lost_overflow += count;
      break;
    case LossCause::Timeout:
      lost_timeout += count;
      break;
    case LossCause::Inferred:
      lost_inferred += count;
      break;
    }
  }

  std::vector<std::uint32_t> deliveredSeqs() const {
    std::vector<std::uint32_t> seqs;
    for (const auto &part : delivered) {
      seqs.push_back(part.seq);
    }
    return seqs;
  }

  // The next sequence number the buffer must release, once anything was released.
  std::optional<std::uint32_t> next{};
  std::vector<Delivered> delivered;
  std::vector<Lost> losses;
  std::uint64_t lost_overflow = 0;
  std::uint64_t lost_timeout = 0;
  std::uint64_t lost_inferred = 0;
  std::uint64_t order_violations = 0;

private:
  void expect(std::uint32_t first, std::uint32_t count) {
    if (next && *next != first) {
      ++order_violations;
    }
    next = first + count;
  }
};

} // namespace nvbox::osr::testing

// libFuzzer target for the OSR wire parser and the re-sequencing buffer.
//
// Each input is used three ways:
//  1. parsed as is with a fixed key — exercises every pre-authentication
//     check and the tag comparison on arbitrary bytes;
//  2. parsed with a valid tag appended (computed over the whole input), so
//     the fuzzer reaches the field checks behind authentication;
//  3. cut into records [ctrl:1][len:1][bytes:len], each tagged and parsed;
//     every DATA part that parses is pushed into a small ResequencingBuffer,
//     held until due by a PlayoutClock fed with its send timestamp, as the
//     egress does (any timestamp: it comes from the packet).
//     ctrl drives the clock, expire() and resize(), and can stamp valid
//     values over the magic, version, length and other fields: without that
//     help the fuzzer rarely finds the 16-bit magic, and the buffer would
//     hardly ever see a part.
// A sink checks the buffer's contract — every sequence number released once,
// in order — and traps on a violation, as do parse results that break the
// documented invariants.
#include "osr/playout_clock.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/wire.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace {

using namespace nvbox::osr;

const OverlayKey &fuzzKey() {
  static const OverlayKey key = [] {
    std::array<std::uint8_t, OverlayKey::kSize> bytes{};
    bytes.fill(0x5A);
    return OverlayKey::fromBytes(bytes);
  }();
  return key;
}

PacketAuthenticator &fuzzAuth() {
  static PacketAuthenticator auth(fuzzKey());
  return auth;
}

class CheckingSink final : public ResequencingSink {
public:
  void deliver(const Part &part) override {
    expect(part.seq, 1);
    if (part.payload.size() > kMaxPartBytes || part.k == 0 || part.part_index >= part.k) {
      __builtin_trap();
    }
  }
  void lost(std::uint32_t first_seq, std::uint32_t count, LossCause) override {
    if (count == 0) {
      __builtin_trap();
    }
    expect(first_seq, count);
  }
  static constexpr std::size_t kMaxPartBytes = 64;

private:
  void expect(std::uint32_t first, std::uint32_t count) {
    if (next_ && *next_ != first) {
      __builtin_trap();
    }
    next_ = first + count;
  }
  std::optional<std::uint32_t> next_;
};

// Parses `packet` and checks what a successful parse promises.
wire::ParseResult checkedParse(std::span<const std::uint8_t> packet) {
  const wire::ParseResult result = wire::parse(packet, fuzzAuth());
  if (result.ok() &&
      (result.header.k == 0 || result.header.k > kMaxK ||
       result.header.part_index >= result.header.k || result.header.path_id >= kMaxPaths ||
       result.payload.size() + wire::kOverhead != packet.size() ||
       result.payload.data() != packet.data() + wire::kHeaderSize)) {
    __builtin_trap();
  }
  return result;
}

std::array<std::uint8_t, wire::kMaxPacket + 1> g_scratch;

// Copies `body` into g_scratch (truncated to fit); the caller may then patch it.
std::span<std::uint8_t> stage(std::span<const std::uint8_t> body) {
  const std::size_t size = std::min(body.size(), g_scratch.size() - wire::kTagSize);
  std::copy(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(size), g_scratch.begin());
  return std::span(g_scratch).first(size);
}

// Appends a valid tag to the staged body, under the nonce the body carries
// (a body too short to carry one makes a datagram rejected as too short
// before its tag is looked at); returns the whole datagram.
std::span<const std::uint8_t> seal(std::span<std::uint8_t> body) {
  std::array<std::uint8_t, PacketAuthenticator::kNonceSize> nonce{};
  if (body.size() >= wire::offset::kNonce + nonce.size()) {
    std::copy_n(body.begin() + wire::offset::kNonce, nonce.size(), nonce.begin());
  }
  fuzzAuth().computeTag(body, nonce,
                        std::span(g_scratch).subspan(body.size()).first<wire::kTagSize>());
  return std::span(g_scratch).first(body.size() + wire::kTagSize);
}

enum Ctrl : std::uint8_t {
  kClockMask = 0x07,   // advance the clock by 0..7 ms
  kExpire = 0x08,      // call expire() before this record
  kStampMagic = 0x10,  // overwrite magic and version with valid values
  kStampLength = 0x20, // overwrite the length field with the true length
  kStampFields = 0x40, // make type, flags, k, part index and path id valid
  kResize = 0xC0,      // both top bits (so fields are stamped too): resize() to
                       // 1 + 3 * (clock bits) first
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  checkedParse(input);
  checkedParse(seal(stage(input)));

  ResequencingBuffer buffer({.capacity = 8,
                             .max_part_bytes = CheckingSink::kMaxPartBytes,
                             .gap_timeout = std::chrono::milliseconds(5)});
  CheckingSink sink;
  PlayoutClock clock;
  Nanos now{};
  std::size_t at = 0;
  while (at + 2 <= input.size()) {
    const std::uint8_t ctrl = input[at];
    const std::size_t len = std::min<std::size_t>(input[at + 1], input.size() - at - 2);
    const auto record = input.subspan(at + 2, len);
    at += 2 + len;
    now += std::chrono::milliseconds(ctrl & kClockMask);
    if ((ctrl & kExpire) != 0) {
      buffer.expire(now, sink);
    }
    if ((ctrl & kResize) == kResize) {
      buffer.resize(1 + (ctrl & kClockMask) * 3U, sink);
    }
    const auto body = stage(record);
    if (body.size() >= wire::kHeaderSize) {
      if ((ctrl & kStampMagic) != 0) {
        body[wire::offset::kMagic] = wire::kMagic >> 8;
        body[wire::offset::kMagic + 1] = wire::kMagic & 0xFF;
        body[wire::offset::kVersion] = wire::kVersion;
      }
      if ((ctrl & kStampFields) != 0) {
        body[wire::offset::kType] = static_cast<std::uint8_t>(wire::PacketType::Data);
        body[wire::offset::kFlags] = 0;
        const auto k = static_cast<std::uint8_t>(1 + body[wire::offset::kK] % kMaxK);
        body[wire::offset::kK] = k;
        body[wire::offset::kPartIndex] =
            static_cast<std::uint8_t>(body[wire::offset::kPartIndex] % k);
        body[wire::offset::kPathId] =
            static_cast<std::uint8_t>(body[wire::offset::kPathId] % kMaxPaths);
      }
      if ((ctrl & kStampLength) != 0) {
        const std::size_t length = body.size() - wire::kHeaderSize;
        body[wire::offset::kLength] = static_cast<std::uint8_t>(length >> 8);
        body[wire::offset::kLength + 1] = static_cast<std::uint8_t>(length);
      }
    }
    const wire::ParseResult result = checkedParse(seal(body));
    if (result.ok() && result.header.type == wire::PacketType::Data) {
      clock.observe(result.header.path_id, result.header.send_ns, now);
      const Nanos hold = clock.hold(result.header.send_ns, now);
      if (hold < Nanos(0) || hold > PlayoutClock::kMaxHold) {
        __builtin_trap();
      }
      buffer.push(Part{.seq = result.header.seq,
                       .segment = result.header.segment,
                       .part_index = result.header.part_index,
                       .k = result.header.k,
                       .path_id = result.header.path_id,
                       .payload = result.payload,
                       .due = hold > Nanos(0) ? now + hold : Nanos(0)},
                  now, sink);
    }
    if (buffer.occupancy() > buffer.capacity()) {
      __builtin_trap();
    }
  }
  buffer.expire(now + std::chrono::hours(1), sink);
  if (buffer.occupancy() != 0) {
    __builtin_trap();
  }
  return 0;
}

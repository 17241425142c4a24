// wire — the UDP tunnel packet exchanged between OSRs (version 3).
//
// What it does: encode() writes one packet into a caller-provided buffer;
// parse() validates an untrusted datagram and returns either its header and a
// view of its payload or the one reason it was rejected. The payloads of
// PROBE and FEEDBACK have their own encoders and parsers below. The layout,
// every field's meaning and every rejection reason are specified in
// docs/wire-format.md; this header and that document must agree.
//
//   offset size field
//        0    1 magic 0x4F ("O")        8    4 sequence (per flow, wraps)
//        1    1 version (3)            12    2 path sequence (per path, wraps)
//        2    1 type                   14    4 send time, µs (sender's clock,
//        3    1 path id << 4 | flags              wraps at 2^32)
//               (1 FIRST, 2 EXPRESS,   18    4 destination OSR IPv4 address
//                4 LAST)               22    2 destination OSR UDP port
//        4    4 flow id                24    n payload
//                                    24+n   16 tag over bytes [0, 24+n)
//   All integers are big-endian (network byte order).
//
// A DATA packet is one part of a segment: the ingress cuts each packet it
// routes (a TCP super-packet of up to 64 KiB, or any other IP packet) into
// parts that fill the paths' MTU; the first part starts with a 4-byte
// segment header (the super-packet's MSS) and carries the inner IP and TCP
// headers, the others only payload; FIRST and LAST mark the ends. The
// egress re-sequences parts by sequence number and rebuilds the segment.
//
// The destination is the OSR the packet is for (one-hop source routing:
// the ingress sends it to a relay, which forwards it unchanged to the
// destination). It is authenticated like every other byte, so a relay
// cannot be made to forward anywhere by someone without the key.
//
// Parameters: a PacketAuthenticator (made from the OverlayKey), which
// computes both functions' tags. Counters: none (callers count ParseStatus).
// Threading: the functions keep no state of their own; the authenticator is
// the caller's, one per thread.
//
// Every function is noexcept and allocation-free. parse() never reads past
// the span it is given and trusts no field it has not validated:
// authentication is checked right after the size, magic and version checks
// and before any other field is looked at.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/packet_authenticator.hpp"
#include "osr/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace nvbox::osr::wire {

inline constexpr std::uint8_t kMagic = 0x4F;
inline constexpr std::uint8_t kVersion = 3;
inline constexpr std::size_t kHeaderSize = 24;
inline constexpr std::size_t kTagSize = PacketAuthenticator::kTagSize;
inline constexpr std::size_t kOverhead = kHeaderSize + kTagSize;
// A UDP datagram over IPv4 carries at most 65507 bytes.
inline constexpr std::size_t kMaxPacket = 65507;
inline constexpr std::size_t kMaxPayload = kMaxPacket - kOverhead;
// Bytes an IPv4 UDP tunnel packet adds around a part: IP, UDP, header, tag.
inline constexpr std::size_t kIpUdpOverhead = 28 + kOverhead;

// DATA flags. FIRST and LAST mark a segment's first and last part (a segment
// of one part has both). EXPRESS, on a whole segment only (FIRST | LAST): a
// packet outside its flow's sequence, which the egress delivers at once,
// neither re-sequenced nor held (it reads no sequence number; the ingress
// sends pure TCP ACKs so, docs/osrd.md, ACKs). Receivers reject any other set
// bit, and every flag off DATA, so that a later flag can never be silently
// ignored by an old one.
inline constexpr std::uint8_t kFlagFirst = 0x01;
inline constexpr std::uint8_t kFlagExpress = 0x02;
inline constexpr std::uint8_t kFlagLast = 0x04;
inline constexpr std::uint8_t kKnownFlags = kFlagFirst | kFlagExpress | kFlagLast;

// Field offsets, public so that tests and tools can address single fields.
namespace offset {
inline constexpr std::size_t kMagic = 0;
inline constexpr std::size_t kVersion = 1;
inline constexpr std::size_t kType = 2;
inline constexpr std::size_t kPathFlags = 3;
inline constexpr std::size_t kFlowId = 4;
inline constexpr std::size_t kSeq = 8;
inline constexpr std::size_t kPathSeq = 12;
inline constexpr std::size_t kSendUs = 14;
inline constexpr std::size_t kDstAddr = 18;
inline constexpr std::size_t kDstPort = 22;
} // namespace offset

enum class PacketType : std::uint8_t {
  Data = 1,       // one part of a segment of a flow
  Probe = 2,      // path liveness/RTT probe; seq = per-path probe number
  ProbeReply = 3, // echoes a probe's flow, seq, path id and send time
  Feedback = 4,   // the egress's measurements of a flow's paths, to its ingress
};

struct Header {
  PacketType type = PacketType::Data;
  std::uint8_t flags = 0;
  PathId path_id = 0;         // < kMaxPaths (4 bits on the wire)
  std::uint16_t path_seq = 0; // DATA: the part's number on its path
  std::uint32_t flow_id = 0;
  std::uint32_t seq = 0;
  std::uint32_t send_us = 0; // sender's monotonic clock, µs, mod 2^32
  Endpoint dst{};            // not validated: whether it is local is the daemon's call

  friend bool operator==(const Header &, const Header &) = default;
};

// Rejection reasons, in the order parse() checks them: a packet is reported
// with the first reason that applies.
enum class ParseStatus : std::uint8_t {
  Ok,
  TooShort,   // fewer than kOverhead bytes
  TooLong,    // more than kMaxPacket bytes
  BadMagic,   // byte 0 != kMagic
  BadVersion, // byte 1 != kVersion (version 2's "OS" magic lands here as 'S')
  BadTag,     // authentication failed: nothing else was looked at
  BadType,    // type not in PacketType
  BadFlags,   // a flag outside kKnownFlags, a flag off DATA, EXPRESS on a part
};
inline constexpr std::size_t kParseStatusCount = 8;

std::string_view toString(ParseStatus status) noexcept;

struct ParseResult {
  ParseStatus status = ParseStatus::TooShort;
  Header header{};                         // meaningful only when ok()
  std::span<const std::uint8_t> payload{}; // views the parsed datagram
  bool ok() const noexcept { return status == ParseStatus::Ok; }
};

// Total datagram size for a payload of `payload_size` bytes.
constexpr std::size_t packetSize(std::size_t payload_size) noexcept {
  return kOverhead + payload_size;
}

// Writes header, payload and tag into `out`. Returns the bytes written, or 0
// when `out` is too small, the payload exceeds kMaxPayload, or the header
// would be rejected by parse() (bad type, flags or path id) — so nothing this
// encodes can fail parsing with the same key. The payload may already sit at
// out[kHeaderSize...] (built in place): overlapping ranges are handled.
std::size_t encode(const Header &header, std::span<const std::uint8_t> payload,
                   PacketAuthenticator &auth, std::span<std::uint8_t> out) noexcept;

// Validates `packet` (an untrusted datagram) and authenticates it with
// `auth`'s key.
ParseResult parse(std::span<const std::uint8_t> packet, PacketAuthenticator &auth) noexcept;

// Serial-number order (RFC 1982) of 32-bit sequence numbers and times.
constexpr bool before(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(b - a) > 0;
}

// ---------------------------------------------------------------------------
// PROBE payload: where to send the reply, and what the prober has sent on the
// path so far (the egress infers losses from it, see FeedbackMeter).
struct ProbeInfo {
  Endpoint back{};                 // the prober's tunnel endpoint
  std::uint16_t next_path_seq = 0; // the path sequence of the next DATA part
  std::uint32_t next_seq = 0;      // the flow sequence of the next DATA part
  std::uint32_t min_rtt_us = 0;    // the prober's minimum RTT on this path; 0 unknown
  friend bool operator==(const ProbeInfo &, const ProbeInfo &) = default;
};
inline constexpr std::size_t kProbeInfoSize = 16;
void encodeProbeInfo(const ProbeInfo &info, std::span<std::uint8_t, kProbeInfoSize> out) noexcept;
// Nothing unless exactly kProbeInfoSize bytes with a valid endpoint.
std::optional<ProbeInfo> parseProbeInfo(std::span<const std::uint8_t> payload) noexcept;

// ---------------------------------------------------------------------------
// FEEDBACK payload: per path of one flow, what arrived at the egress.
// Counters are cumulative since the egress's `epoch` began and wrap at 2^32,
// so that a lost FEEDBACK loses nothing: the next one carries the sums.
struct PathFeedback {
  PathId path = 0;
  std::uint16_t path_seq = 0;                  // the highest path sequence received
  std::uint32_t bytes = 0;                     // payload bytes received (mod 2^32)
  std::uint32_t parts = 0;                     // parts received (mod 2^32)
  std::uint32_t lost = 0;                      // parts missing from the path sequence (mod 2^32)
  std::uint32_t queue_min_us = kUnknownQueue;  // least queueing delay since the last FEEDBACK
  std::uint32_t queue_last_us = kUnknownQueue; // the newest part's queueing delay
  std::uint32_t base_us = 0; // base transit above the flow's fastest path's: relative one-way delay
  static constexpr std::uint32_t kUnknownQueue = 0xFFFFFFFF;
  friend bool operator==(const PathFeedback &, const PathFeedback &) = default;
};
struct Feedback {
  std::uint32_t echo_us = 0; // the newest ingress send time seen in the flow
  std::uint32_t epoch = 0;   // drawn when the egress's flow state began
  std::uint8_t count = 0;
  std::array<PathFeedback, kMaxPaths> paths{};
  friend bool operator==(const Feedback &, const Feedback &) = default;
};
inline constexpr std::size_t kFeedbackHeaderSize = 12;
inline constexpr std::size_t kPathFeedbackSize = 28;
inline constexpr std::size_t kMaxFeedbackSize = kFeedbackHeaderSize + kMaxPaths * kPathFeedbackSize;
// Bytes written (kFeedbackHeaderSize + count * kPathFeedbackSize); 0 when
// `out` is too small or count > kMaxPaths.
std::size_t encodeFeedback(const Feedback &feedback, std::span<std::uint8_t> out) noexcept;
enum class FeedbackStatus : std::uint8_t {
  Ok,
  BadSize,     // not kFeedbackHeaderSize + count * kPathFeedbackSize
  BadCount,    // count > kMaxPaths
  BadReserved, // a reserved byte or bit is set
  BadPath,     // a path id >= kMaxPaths, or listed twice
};
std::string_view toString(FeedbackStatus status) noexcept;
FeedbackStatus parseFeedback(std::span<const std::uint8_t> payload, Feedback &out) noexcept;

} // namespace nvbox::osr::wire

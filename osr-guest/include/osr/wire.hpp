// wire — the UDP tunnel packet exchanged between OSRs.
//
// What it does: encode() writes one packet into a caller-provided buffer;
// parse() validates an untrusted datagram and returns either its header and a
// view of its payload or the one reason it was rejected. The layout, every
// field's meaning and every rejection reason are specified in
// docs/wire-format.md; this header and that document must agree.
//
//   offset size field
//        0    2 magic 0x4F53 ("OS")     16    4 segment number
//        2    1 version (2)             20    8 send timestamp, ns
//        3    1 type                    28    4 destination OSR IPv4 address
//        4    1 flags (bit 1: express)  32    2 destination OSR UDP port
//        5    1 part index (< k)        34    2 payload length n
//        6    1 k (1..16)               36   12 nonce (the sender's counter)
//        7    1 path id (< 16)          48    n payload
//        8    4 flow id               48+n   16 tag: AES-256-GCM over bytes
//       12    4 part sequence number            [0, 48+n) as additional data,
//             (per flow, wraps at 2^32)         under the nonce
//   All integers are big-endian (network byte order).
//
// The destination is the OSR the packet is for (one-hop source routing:
// the ingress sends it to a relay, which forwards it unchanged to the
// destination). It is authenticated like every other byte, so a relay
// cannot be made to forward anywhere by someone without the key.
//
// Parameters: a PacketAuthenticator (made from the OverlayKey), which draws
// encode()'s nonces and computes both functions' tags. Counters: none
// (callers count ParseStatus). Threading: the functions keep no state of
// their own; the authenticator is the caller's, one per thread.
//
// Both functions are noexcept and allocation-free. parse() never reads past
// the span it is given and trusts no field it has not validated:
// authentication is checked right after the size, magic and version checks
// and before any other field is looked at.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/packet_authenticator.hpp"
#include "osr/types.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace nvbox::osr::wire {

inline constexpr std::uint16_t kMagic = 0x4F53;
inline constexpr std::uint8_t kVersion = 2;
inline constexpr std::size_t kHeaderSize = 48;
inline constexpr std::size_t kTagSize = PacketAuthenticator::kTagSize;
inline constexpr std::size_t kOverhead = kHeaderSize + kTagSize;
inline constexpr std::size_t kMaxPayload = 0xFFFF;
inline constexpr std::size_t kMaxPacket = kOverhead + kMaxPayload;
// EXPRESS, on DATA only: a part outside its flow's sequence, which the
// egress delivers at once, neither re-sequenced nor held (it does not read
// seq, segment, part index or k; the ingress sends 0, 0, 0 and 1). The
// ingress sends a stripe's pure TCP ACKs so, on its lowest-delay path
// (docs/osrd.md, ACKs). Receivers reject any other set bit, so that a later
// flag can never be silently ignored by an old one.
inline constexpr std::uint8_t kFlagExpress = 0x02;
inline constexpr std::uint8_t kKnownFlags = kFlagExpress;

// Field offsets, public so that tests and tools can address single fields.
namespace offset {
inline constexpr std::size_t kMagic = 0;
inline constexpr std::size_t kVersion = 2;
inline constexpr std::size_t kType = 3;
inline constexpr std::size_t kFlags = 4;
inline constexpr std::size_t kPartIndex = 5;
inline constexpr std::size_t kK = 6;
inline constexpr std::size_t kPathId = 7;
inline constexpr std::size_t kFlowId = 8;
inline constexpr std::size_t kSeq = 12;
inline constexpr std::size_t kSegment = 16;
inline constexpr std::size_t kSendNs = 20;
inline constexpr std::size_t kDstAddr = 28;
inline constexpr std::size_t kDstPort = 32;
inline constexpr std::size_t kLength = 34;
inline constexpr std::size_t kNonce = 36;
} // namespace offset

enum class PacketType : std::uint8_t {
  Data = 1,       // one part of a segment of a flow
  Probe = 2,      // path liveness/RTT probe; seq = per-path probe number
  ProbeReply = 3, // echoes a probe's seq, path id and send timestamp
};

struct Header {
  PacketType type = PacketType::Data;
  std::uint8_t flags = 0;
  std::uint32_t flow_id = 0;
  std::uint32_t seq = 0;
  std::uint32_t segment = 0;
  std::uint8_t part_index = 0;
  std::uint8_t k = 1;
  PathId path_id = 0;
  std::uint64_t send_ns = 0;
  Endpoint dst{}; // not validated: whether it is local is the daemon's call

  friend bool operator==(const Header &, const Header &) = default;
};

// Rejection reasons, in the order parse() checks them: a packet is reported
// with the first reason that applies.
enum class ParseStatus : std::uint8_t {
  Ok,
  TooShort,       // fewer than kOverhead bytes
  TooLong,        // more than kMaxPacket bytes
  BadMagic,       // magic != kMagic
  BadVersion,     // version != kVersion
  BadTag,         // authentication failed: nothing else was looked at
  BadType,        // type not in PacketType
  BadFlags,       // a flag outside kKnownFlags, or EXPRESS off DATA
  BadK,           // k == 0 or k > kMaxK
  BadPartIndex,   // part index >= k
  BadPathId,      // path id >= kMaxPaths
  LengthMismatch, // payload length != datagram size - kOverhead
};

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
// would be rejected by parse() (bad type, unknown flags, k, part index or path
// id out of range) — so nothing this encodes can fail parsing with the same
// key. Each call takes the authenticator's next nonce. The payload may
// already sit at out[kHeaderSize...] (built in place): overlapping ranges are
// handled.
std::size_t encode(const Header &header, std::span<const std::uint8_t> payload,
                   PacketAuthenticator &auth, std::span<std::uint8_t> out) noexcept;

// Validates `packet` (an untrusted datagram) and authenticates it with
// `auth`'s key under the nonce it carries.
ParseResult parse(std::span<const std::uint8_t> packet, PacketAuthenticator &auth) noexcept;

} // namespace nvbox::osr::wire

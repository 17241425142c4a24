// oracle_wire — the control messages between OSRs and the path oracle.
//
// What it does: encodes and parses the datagrams of the oracle control
// channel (its own UDP port, separate from the data overlay) and of the
// ingress→relay tunnel handshake: REPORT (an OSR's measurements of its peers),
// QUERY / ANSWER (the best k relays from src to dst), HELLO / HELLO_ACK (a
// fresh authenticated handshake before a relay is used), MAP_REQUEST /
// MAP_REPLY (the ALTO-style cost map, as JSON text in chunks).
// docs/wire-format.md ("Oracle control messages") specifies every field and
// every rejection reason; this header and that document must agree.
//
//   offset size field
//        0    2 magic 0x4F52 ("OR")      14    2 reserved (0)
//        2    1 version (1)              16    8 nonce (request id, handshake nonce)
//        3    1 type                     24    8 timestamp: sender's CLOCK_REALTIME, ns
//        4    1 flags (none defined)     32    n payload (per type)
//        5    1 reserved (0)           32+n   16 tag: keyed BLAKE2b-128 over [0, 32+n)
//        6    2 payload length n
//        8    6 sender: the member's tunnel endpoint (IPv4, port)
//   All integers are big-endian.
//
// Authentication: computeTag (keyed BLAKE2b, 16 bytes, the overlay key) over
// everything before the tag, verified in constant time. (Tunnel packets used
// it too up to wire version 1; they now use AES-GCM, which needs a nonce per
// sender: control messages are too rare to need its speed.) A different
// magic keeps the two protocols apart: a tunnel packet is never a valid
// oracle message and vice versa.
// Freshness and replays are not the parser's business (it has no state):
// ReplayGuard decides them from the sender and timestamp.
//
// parse() checks size, magic, version, then the tag, then every header and
// payload field, and reports the first failure; a message that parses is
// well formed down to its last byte, so the decode*() accessors cannot fail.
//
// Parameters: the OverlayKey. Counters: none (callers count ParseStatus).
// Threading: pure functions; safe from any thread. Nothing here allocates or
// throws.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/overlay_key.hpp"
#include "osr/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace nvbox::osr::oracle {

inline constexpr std::uint16_t kMagic = 0x4F52;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kOverhead = kHeaderSize + kTagSize;
// The largest UDP payload over IPv4.
inline constexpr std::size_t kMaxDatagram = 65507;
inline constexpr std::size_t kMaxPayload = kMaxDatagram - kOverhead;

inline constexpr std::size_t kMaxGroup = 16; // group label bytes
inline constexpr std::size_t kReportEntrySize = 20;
inline constexpr std::size_t kMaxReportEntries = 2048;
inline constexpr std::size_t kQuerySize = 16;
inline constexpr std::size_t kAnswerFixed = 32;
inline constexpr std::size_t kAnswerEntrySize = 44;
inline constexpr std::size_t kMaxAnswer = kMaxK; // relays per answer
inline constexpr std::size_t kHelloSize = 8;
inline constexpr std::size_t kMapChunkFixed = 4;
inline constexpr std::size_t kMaxMapChunk = 60000;
inline constexpr std::uint16_t kLossScale = 10000; // loss in 1/10000

namespace offset {
inline constexpr std::size_t kMagic = 0;
inline constexpr std::size_t kVersion = 2;
inline constexpr std::size_t kType = 3;
inline constexpr std::size_t kFlags = 4;
inline constexpr std::size_t kReserved1 = 5;
inline constexpr std::size_t kLength = 6;
inline constexpr std::size_t kSenderAddr = 8;
inline constexpr std::size_t kSenderPort = 12;
inline constexpr std::size_t kReserved2 = 14;
inline constexpr std::size_t kNonce = 16;
inline constexpr std::size_t kTimestamp = 24;
} // namespace offset

enum class MessageType : std::uint8_t {
  Report = 1,
  Query = 2,
  Answer = 3,
  Hello = 4,
  HelloAck = 5,
  MapRequest = 6,
  MapReply = 7,
};

enum class Objective : std::uint8_t { Delay = 1, Rate = 2, Disjoint = 3 };

enum class AnswerStatus : std::uint8_t {
  Ok = 0,
  UnknownSource = 1,      // no fresh report from src
  UnknownDestination = 2, // dst is not a member
};

// Rejection reasons, in the order parse() checks them.
enum class ParseStatus : std::uint8_t {
  Ok,
  TooShort,           // fewer than kOverhead bytes
  TooLong,            // more than kMaxDatagram bytes
  BadMagic,           // magic != kMagic
  BadVersion,         // version != kVersion
  BadTag,             // authentication failed: nothing else was looked at
  BadType,            // type not in MessageType
  BadFlags,           // any flag set
  BadReserved,        // a reserved header byte is not 0
  LengthMismatch,     // payload length != datagram size - kOverhead
  BadSender,          // sender address 0 or port 0
  BadSize,            // payload size wrong for the type
  BadGroup,           // group label too long or not [A-Za-z0-9._-]
  BadCount,           // entry count does not match the payload
  BadEndpoint,        // an endpoint field has address 0 or port 0
  BadLoss,            // loss > kLossScale
  BadK,               // k == 0 or k > kMaxK
  BadObjective,       // objective not in Objective
  BadStatus,          // answer status unknown
  BadChunk,           // map chunk index >= count, or count 0
  BadPayloadReserved, // a reserved payload byte is not 0
};

std::string_view toString(ParseStatus status) noexcept;
std::string_view toString(Objective objective) noexcept;

struct Header {
  MessageType type = MessageType::Report;
  Endpoint sender{};
  std::uint64_t nonce = 0;
  std::int64_t timestamp_ns = 0;
};

struct Message {
  ParseStatus status = ParseStatus::TooShort;
  Header header{};
  std::span<const std::uint8_t> payload{}; // views the parsed datagram
  [[nodiscard]] bool ok() const noexcept { return status == ParseStatus::Ok; }
};

// A group label: up to kMaxGroup bytes of [A-Za-z0-9._-], stored inline.
struct Group {
  std::array<char, kMaxGroup> bytes{};
  std::uint8_t size = 0;
  [[nodiscard]] std::string_view view() const noexcept { return {bytes.data(), size}; }
  // False (and empty) if `text` is not a valid label.
  bool assign(std::string_view text) noexcept;
  friend bool operator==(const Group &a, const Group &b) noexcept { return a.view() == b.view(); }
};

// One measurement of the sender's path to a peer.
struct ReportEntry {
  Endpoint peer{};
  std::uint16_t loss = 0;     // in 1/kLossScale of the probes
  std::uint32_t delay_us = 0; // one-way estimate (RTT / 2)
  std::uint64_t rate = 0;     // available rate estimate, bytes/s; 0 = unknown
  friend bool operator==(const ReportEntry &, const ReportEntry &) = default;
};

struct Report {
  Group group{};
  std::span<const std::uint8_t> entries{}; // count * kReportEntrySize bytes
  [[nodiscard]] std::size_t count() const noexcept { return entries.size() / kReportEntrySize; }
  [[nodiscard]] ReportEntry entry(std::size_t i) const noexcept;
};

struct Query {
  Endpoint src{};
  Endpoint dst{};
  std::uint8_t k = 1;
  Objective objective = Objective::Delay;
  friend bool operator==(const Query &, const Query &) = default;
};

struct AnswerRelay {
  Endpoint relay{};
  bool beats_direct = false;  // src→relay→dst is faster than src→dst
  std::uint32_t delay_us = 0; // src→relay + relay→dst
  std::uint64_t rate = 0;     // min(rate(src,relay), rate(relay,dst))
  std::uint16_t loss = 0;     // 1 - (1-a)(1-b), in 1/kLossScale
  std::uint32_t age_ms = 0;   // age of the older of the two measurements
  Group group{};
  friend bool operator==(const AnswerRelay &, const AnswerRelay &) = default;
};

struct Answer {
  Endpoint src{};
  Endpoint dst{};
  Objective objective = Objective::Delay;
  AnswerStatus status = AnswerStatus::Ok;
  bool direct_known = false; // src→dst measured and fresh
  std::uint32_t direct_delay_us = 0;
  std::uint64_t direct_rate = 0;
  std::uint32_t direct_age_ms = 0;
  std::uint8_t count = 0;
  std::array<AnswerRelay, kMaxAnswer> relays{};
};

struct Hello {
  Endpoint peer{}; // HELLO: the relay addressed; HELLO_ACK: the requester answered
};

struct MapChunk {
  std::uint16_t index = 0;
  std::uint16_t count = 1;
  std::span<const std::uint8_t> text{};
};

// A random 64-bit nonce from libsodium's CSPRNG (needs a key made first, so
// that sodium_init() has run).
std::uint64_t randomNonce() noexcept;

// Validates `datagram` (untrusted) and authenticates it with `key`.
Message parse(std::span<const std::uint8_t> datagram, const OverlayKey &key) noexcept;

// The tag over `authenticated` (header + payload): crypto_generichash, 16-byte
// output, keyed with the 32-byte overlay key. False only if libsodium refuses
// the parameters, which the fixed sizes rule out.
bool computeTag(std::span<const std::uint8_t> authenticated, const OverlayKey &key,
                std::span<std::uint8_t, kTagSize> tag) noexcept;

// Decoders of a message that parse() accepted with that type.
Report decodeReport(const Message &m) noexcept;
Query decodeQuery(const Message &m) noexcept;
Answer decodeAnswer(const Message &m) noexcept;
Hello decodeHello(const Message &m) noexcept; // HELLO and HELLO_ACK
MapChunk decodeMapChunk(const Message &m) noexcept;

// Encoders: write one datagram into `out`, return its size, or 0 when `out`
// is too small or the content would not parse (so nothing they produce is
// rejected by parse() with the same key).
std::size_t encodeReport(const Header &h, std::string_view group,
                         std::span<const ReportEntry> entries, const OverlayKey &key,
                         std::span<std::uint8_t> out) noexcept;
std::size_t encodeQuery(const Header &h, const Query &q, const OverlayKey &key,
                        std::span<std::uint8_t> out) noexcept;
std::size_t encodeAnswer(const Header &h, const Answer &a, const OverlayKey &key,
                         std::span<std::uint8_t> out) noexcept;
std::size_t encodeHello(const Header &h, const Hello &hello, const OverlayKey &key,
                        std::span<std::uint8_t> out) noexcept; // type Hello or HelloAck
std::size_t encodeMapRequest(const Header &h, const OverlayKey &key,
                             std::span<std::uint8_t> out) noexcept;
std::size_t encodeMapChunk(const Header &h, std::uint16_t index, std::uint16_t count,
                           std::span<const std::uint8_t> text, const OverlayKey &key,
                           std::span<std::uint8_t> out) noexcept;

} // namespace nvbox::osr::oracle

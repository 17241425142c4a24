#include "osr/oracle_wire.hpp"

#include "big_endian.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace nvbox::osr::oracle {

bool computeTag(std::span<const std::uint8_t> authenticated, const OverlayKey &key,
                std::span<std::uint8_t, kTagSize> tag) noexcept {
  const auto key_bytes = key.bytes();
  return crypto_generichash(tag.data(), tag.size(), authenticated.data(), authenticated.size(),
                            key_bytes.data(), key_bytes.size()) == 0;
}

namespace {

using be::get16;
using be::get32;
using be::get64;
using be::getEndpoint;
using be::put16;
using be::put32;
using be::put64;
using be::putEndpoint;

bool validEndpoint(const Endpoint &ep) noexcept {
  return ep.addr != 0 && ep.port != 0;
}

bool groupChar(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool validGroup(std::string_view text) noexcept {
  return text.size() <= kMaxGroup && std::all_of(text.begin(), text.end(), groupChar);
}

// A group label padded with zeros in a fixed field: the label is the bytes
// before the first zero, and every byte after it must be zero too.
bool validPaddedGroup(std::span<const std::uint8_t> field) noexcept {
  std::size_t n = 0;
  while (n < field.size() && field[n] != 0) {
    if (!groupChar(static_cast<char>(field[n]))) {
      return false;
    }
    ++n;
  }
  return std::all_of(field.begin() + static_cast<std::ptrdiff_t>(n), field.end(),
                     [](std::uint8_t b) { return b == 0; });
}

Group paddedGroup(std::span<const std::uint8_t> field) noexcept {
  Group g;
  while (g.size < field.size() && field[g.size] != 0) {
    g.bytes[g.size] = static_cast<char>(field[g.size]);
    ++g.size;
  }
  return g;
}

bool knownObjective(std::uint8_t o) noexcept {
  return o >= 1 && o <= 3;
}

// Field checks of each payload, after authentication.
ParseStatus validatePayload(MessageType type, std::span<const std::uint8_t> p) noexcept {
  switch (type) {
  case MessageType::Report: {
    if (p.size() < 3) {
      return ParseStatus::BadSize;
    }
    const std::size_t glen = p[0];
    if (glen > kMaxGroup || p.size() < 3 + glen) {
      return ParseStatus::BadGroup;
    }
    for (std::size_t i = 0; i < glen; ++i) {
      if (!groupChar(static_cast<char>(p[1 + i]))) {
        return ParseStatus::BadGroup;
      }
    }
    const std::size_t count = get16(p, 1 + glen);
    if (count > kMaxReportEntries || p.size() != 3 + glen + count * kReportEntrySize) {
      return ParseStatus::BadCount;
    }
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t at = 3 + glen + i * kReportEntrySize;
      if (!validEndpoint(getEndpoint(p, at))) {
        return ParseStatus::BadEndpoint;
      }
      if (get16(p, at + 6) > kLossScale) {
        return ParseStatus::BadLoss;
      }
    }
    return ParseStatus::Ok;
  }
  case MessageType::Query:
    if (p.size() != kQuerySize) {
      return ParseStatus::BadSize;
    }
    if (!validEndpoint(getEndpoint(p, 0)) || !validEndpoint(getEndpoint(p, 6))) {
      return ParseStatus::BadEndpoint;
    }
    if (p[12] == 0 || p[12] > kMaxK) {
      return ParseStatus::BadK;
    }
    if (!knownObjective(p[13])) {
      return ParseStatus::BadObjective;
    }
    if (p[14] != 0 || p[15] != 0) {
      return ParseStatus::BadPayloadReserved;
    }
    return ParseStatus::Ok;
  case MessageType::Answer: {
    if (p.size() < kAnswerFixed) {
      return ParseStatus::BadSize;
    }
    if (!validEndpoint(getEndpoint(p, 0)) || !validEndpoint(getEndpoint(p, 6))) {
      return ParseStatus::BadEndpoint;
    }
    if (!knownObjective(p[12])) {
      return ParseStatus::BadObjective;
    }
    if (p[13] > static_cast<std::uint8_t>(AnswerStatus::UnknownDestination)) {
      return ParseStatus::BadStatus;
    }
    if ((p[14] & ~1U) != 0 || p[31] != 0) {
      return ParseStatus::BadPayloadReserved;
    }
    const std::size_t count = p[15];
    if (count > kMaxAnswer || p.size() != kAnswerFixed + count * kAnswerEntrySize) {
      return ParseStatus::BadCount;
    }
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t at = kAnswerFixed + i * kAnswerEntrySize;
      if (!validEndpoint(getEndpoint(p, at))) {
        return ParseStatus::BadEndpoint;
      }
      if ((p[at + 6] & ~1U) != 0 || p[at + 7] != 0 || p[at + 22] != 0 || p[at + 23] != 0) {
        return ParseStatus::BadPayloadReserved;
      }
      if (get16(p, at + 20) > kLossScale) {
        return ParseStatus::BadLoss;
      }
      if (!validPaddedGroup(p.subspan(at + 28, kMaxGroup))) {
        return ParseStatus::BadGroup;
      }
    }
    return ParseStatus::Ok;
  }
  case MessageType::Hello:
  case MessageType::HelloAck:
    if (p.size() != kHelloSize) {
      return ParseStatus::BadSize;
    }
    if (!validEndpoint(getEndpoint(p, 0))) {
      return ParseStatus::BadEndpoint;
    }
    if (p[6] != 0 || p[7] != 0) {
      return ParseStatus::BadPayloadReserved;
    }
    return ParseStatus::Ok;
  case MessageType::MapRequest:
    return p.empty() ? ParseStatus::Ok : ParseStatus::BadSize;
  case MessageType::MapReply: {
    if (p.size() < kMapChunkFixed || p.size() > kMapChunkFixed + kMaxMapChunk) {
      return ParseStatus::BadSize;
    }
    const std::uint16_t index = get16(p, 0);
    const std::uint16_t count = get16(p, 2);
    if (count == 0 || index >= count) {
      return ParseStatus::BadChunk;
    }
    return ParseStatus::Ok;
  }
  }
  return ParseStatus::BadType;
}

// Header, payload already at out[kHeaderSize...], then the tag.
std::size_t seal(MessageType type, const Header &h, std::size_t payload, const OverlayKey &key,
                 std::span<std::uint8_t> out) noexcept {
  if (!validEndpoint(h.sender) || payload > kMaxPayload) {
    return 0;
  }
  put16(out, offset::kMagic, kMagic);
  out[offset::kVersion] = kVersion;
  out[offset::kType] = static_cast<std::uint8_t>(type);
  out[offset::kFlags] = 0;
  out[offset::kReserved1] = 0;
  put16(out, offset::kLength, static_cast<std::uint16_t>(payload));
  putEndpoint(out, offset::kSenderAddr, h.sender);
  put16(out, offset::kReserved2, 0);
  put64(out, offset::kNonce, h.nonce);
  put64(out, offset::kTimestamp, static_cast<std::uint64_t>(h.timestamp_ns));
  const std::size_t body = kHeaderSize + payload;
  if (validatePayload(type, out.subspan(kHeaderSize, payload)) != ParseStatus::Ok ||
      !computeTag(out.first(body), key, out.subspan(body).first<kTagSize>())) {
    return 0;
  }
  return body + kTagSize;
}

} // namespace

std::uint64_t randomNonce() noexcept {
  std::uint64_t nonce = 0;
  randombytes_buf(&nonce, sizeof nonce);
  return nonce;
}

bool Group::assign(std::string_view text) noexcept {
  if (!validGroup(text)) {
    size = 0;
    return false;
  }
  std::copy(text.begin(), text.end(), bytes.begin());
  size = static_cast<std::uint8_t>(text.size());
  return true;
}

std::string_view toString(ParseStatus status) noexcept {
  switch (status) {
  case ParseStatus::Ok:
    return "ok";
  case ParseStatus::TooShort:
    return "too short";
  case ParseStatus::TooLong:
    return "too long";
  case ParseStatus::BadMagic:
    return "bad magic";
  case ParseStatus::BadVersion:
    return "bad version";
  case ParseStatus::BadTag:
    return "bad authentication tag";
  case ParseStatus::BadType:
    return "bad type";
  case ParseStatus::BadFlags:
    return "unknown flags";
  case ParseStatus::BadReserved:
    return "reserved header byte set";
  case ParseStatus::LengthMismatch:
    return "payload length mismatch";
  case ParseStatus::BadSender:
    return "bad sender";
  case ParseStatus::BadSize:
    return "bad payload size";
  case ParseStatus::BadGroup:
    return "bad group label";
  case ParseStatus::BadCount:
    return "bad entry count";
  case ParseStatus::BadEndpoint:
    return "bad endpoint";
  case ParseStatus::BadLoss:
    return "loss out of range";
  case ParseStatus::BadK:
    return "k out of range";
  case ParseStatus::BadObjective:
    return "bad objective";
  case ParseStatus::BadStatus:
    return "bad answer status";
  case ParseStatus::BadChunk:
    return "bad map chunk";
  case ParseStatus::BadPayloadReserved:
    return "reserved payload byte set";
  }
  return "unknown parse status";
}

std::string_view toString(Objective objective) noexcept {
  switch (objective) {
  case Objective::Delay:
    return "delay";
  case Objective::Rate:
    return "rate";
  case Objective::Disjoint:
    return "disjoint";
  }
  return "delay";
}

Message parse(std::span<const std::uint8_t> d, const OverlayKey &key) noexcept {
  Message m;
  if (d.size() < kOverhead) {
    m.status = ParseStatus::TooShort;
    return m;
  }
  if (d.size() > kMaxDatagram) {
    m.status = ParseStatus::TooLong;
    return m;
  }
  if (get16(d, offset::kMagic) != kMagic) {
    m.status = ParseStatus::BadMagic;
    return m;
  }
  if (d[offset::kVersion] != kVersion) {
    m.status = ParseStatus::BadVersion;
    return m;
  }
  const std::size_t body = d.size() - kTagSize;
  std::array<std::uint8_t, kTagSize> expected{};
  if (!computeTag(d.first(body), key, expected) ||
      crypto_verify_16(expected.data(), d.data() + body) != 0) {
    m.status = ParseStatus::BadTag;
    return m;
  }
  const std::uint8_t type = d[offset::kType];
  if (type < static_cast<std::uint8_t>(MessageType::Report) ||
      type > static_cast<std::uint8_t>(MessageType::MapReply)) {
    m.status = ParseStatus::BadType;
    return m;
  }
  if (d[offset::kFlags] != 0) {
    m.status = ParseStatus::BadFlags;
    return m;
  }
  if (d[offset::kReserved1] != 0 || get16(d, offset::kReserved2) != 0) {
    m.status = ParseStatus::BadReserved;
    return m;
  }
  if (get16(d, offset::kLength) != body - kHeaderSize) {
    m.status = ParseStatus::LengthMismatch;
    return m;
  }
  const Endpoint sender = getEndpoint(d, offset::kSenderAddr);
  if (!validEndpoint(sender)) {
    m.status = ParseStatus::BadSender;
    return m;
  }
  const auto payload = d.subspan(kHeaderSize, body - kHeaderSize);
  m.status = validatePayload(static_cast<MessageType>(type), payload);
  if (m.status != ParseStatus::Ok) {
    return m;
  }
  m.header = Header{.type = static_cast<MessageType>(type),
                    .sender = sender,
                    .nonce = get64(d, offset::kNonce),
                    .timestamp_ns = static_cast<std::int64_t>(get64(d, offset::kTimestamp))};
  m.payload = payload;
  return m;
}

ReportEntry Report::entry(std::size_t i) const noexcept {
  const std::size_t at = i * kReportEntrySize;
  return ReportEntry{.peer = getEndpoint(entries, at),
                     .loss = get16(entries, at + 6),
                     .delay_us = get32(entries, at + 8),
                     .rate = get64(entries, at + 12)};
}

Report decodeReport(const Message &m) noexcept {
  Report r;
  const auto p = m.payload;
  if (p.size() < 3) {
    return r;
  }
  const std::size_t glen = p[0];
  r.group.assign(std::string_view(reinterpret_cast<const char *>(p.data() + 1), glen));
  r.entries = p.subspan(3 + glen);
  return r;
}

Query decodeQuery(const Message &m) noexcept {
  const auto p = m.payload;
  if (p.size() != kQuerySize) {
    return {};
  }
  return Query{.src = getEndpoint(p, 0),
               .dst = getEndpoint(p, 6),
               .k = p[12],
               .objective = static_cast<Objective>(p[13])};
}

Answer decodeAnswer(const Message &m) noexcept {
  Answer a;
  const auto p = m.payload;
  if (p.size() < kAnswerFixed) {
    return a;
  }
  a.src = getEndpoint(p, 0);
  a.dst = getEndpoint(p, 6);
  a.objective = static_cast<Objective>(p[12]);
  a.status = static_cast<AnswerStatus>(p[13]);
  a.direct_known = (p[14] & 1U) != 0;
  a.count = std::min<std::uint8_t>(p[15], kMaxAnswer);
  a.direct_delay_us = get32(p, 16);
  a.direct_rate = get64(p, 20);
  a.direct_age_ms = get32(p, 28) >> 8; // 24 bits of age, then a reserved byte
  for (std::size_t i = 0; i < a.count && kAnswerFixed + (i + 1) * kAnswerEntrySize <= p.size();
       ++i) {
    const std::size_t at = kAnswerFixed + i * kAnswerEntrySize;
    AnswerRelay &r = a.relays[i];
    r.relay = getEndpoint(p, at);
    r.beats_direct = (p[at + 6] & 1U) != 0;
    r.delay_us = get32(p, at + 8);
    r.rate = get64(p, at + 12);
    r.loss = get16(p, at + 20);
    r.age_ms = get32(p, at + 24);
    r.group = paddedGroup(p.subspan(at + 28, kMaxGroup));
  }
  return a;
}

Hello decodeHello(const Message &m) noexcept {
  if (m.payload.size() != kHelloSize) {
    return {};
  }
  return Hello{.peer = getEndpoint(m.payload, 0)};
}

MapChunk decodeMapChunk(const Message &m) noexcept {
  const auto p = m.payload;
  if (p.size() < kMapChunkFixed) {
    return {};
  }
  return MapChunk{.index = get16(p, 0), .count = get16(p, 2), .text = p.subspan(kMapChunkFixed)};
}

std::size_t encodeReport(const Header &h, std::string_view group,
                         std::span<const ReportEntry> entries, const OverlayKey &key,
                         std::span<std::uint8_t> out) noexcept {
  const std::size_t payload = 3 + group.size() + entries.size() * kReportEntrySize;
  if (!validGroup(group) || entries.size() > kMaxReportEntries || payload > kMaxPayload ||
      out.size() < kOverhead + payload) {
    return 0;
  }
  auto p = out.subspan(kHeaderSize, payload);
  p[0] = static_cast<std::uint8_t>(group.size());
  std::memcpy(p.data() + 1, group.data(), group.size());
  put16(p, 1 + group.size(), static_cast<std::uint16_t>(entries.size()));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::size_t at = 3 + group.size() + i * kReportEntrySize;
    putEndpoint(p, at, entries[i].peer);
    put16(p, at + 6, entries[i].loss);
    put32(p, at + 8, entries[i].delay_us);
    put64(p, at + 12, entries[i].rate);
  }
  return seal(MessageType::Report, h, payload, key, out);
}

std::size_t encodeQuery(const Header &h, const Query &q, const OverlayKey &key,
                        std::span<std::uint8_t> out) noexcept {
  if (out.size() < kOverhead + kQuerySize) {
    return 0;
  }
  auto p = out.subspan(kHeaderSize, kQuerySize);
  putEndpoint(p, 0, q.src);
  putEndpoint(p, 6, q.dst);
  p[12] = q.k;
  p[13] = static_cast<std::uint8_t>(q.objective);
  p[14] = 0;
  p[15] = 0;
  return seal(MessageType::Query, h, kQuerySize, key, out);
}

std::size_t encodeAnswer(const Header &h, const Answer &a, const OverlayKey &key,
                         std::span<std::uint8_t> out) noexcept {
  const std::size_t payload = kAnswerFixed + std::size_t{a.count} * kAnswerEntrySize;
  if (a.count > kMaxAnswer || out.size() < kOverhead + payload) {
    return 0;
  }
  auto p = out.subspan(kHeaderSize, payload);
  std::fill(p.begin(), p.end(), std::uint8_t{0});
  putEndpoint(p, 0, a.src);
  putEndpoint(p, 6, a.dst);
  p[12] = static_cast<std::uint8_t>(a.objective);
  p[13] = static_cast<std::uint8_t>(a.status);
  p[14] = a.direct_known ? 1 : 0;
  p[15] = a.count;
  put32(p, 16, a.direct_delay_us);
  put64(p, 20, a.direct_rate);
  put32(p, 28, std::min<std::uint32_t>(a.direct_age_ms, 0xFFFFFF) << 8);
  for (std::size_t i = 0; i < a.count; ++i) {
    const std::size_t at = kAnswerFixed + i * kAnswerEntrySize;
    const AnswerRelay &r = a.relays[i];
    putEndpoint(p, at, r.relay);
    p[at + 6] = r.beats_direct ? 1 : 0;
    put32(p, at + 8, r.delay_us);
    put64(p, at + 12, r.rate);
    put16(p, at + 20, r.loss);
    put32(p, at + 24, r.age_ms);
    const auto g = r.group.view();
    if (!validGroup(g)) {
      return 0;
    }
    std::memcpy(p.data() + at + 28, g.data(), g.size());
  }
  return seal(MessageType::Answer, h, payload, key, out);
}

std::size_t encodeHello(const Header &h, const Hello &hello, const OverlayKey &key,
                        std::span<std::uint8_t> out) noexcept {
  if ((h.type != MessageType::Hello && h.type != MessageType::HelloAck) ||
      out.size() < kOverhead + kHelloSize) {
    return 0;
  }
  auto p = out.subspan(kHeaderSize, kHelloSize);
  putEndpoint(p, 0, hello.peer);
  p[6] = 0;
  p[7] = 0;
  return seal(h.type, h, kHelloSize, key, out);
}

std::size_t encodeMapRequest(const Header &h, const OverlayKey &key,
                             std::span<std::uint8_t> out) noexcept {
  if (out.size() < kOverhead) {
    return 0;
  }
  return seal(MessageType::MapRequest, h, 0, key, out);
}

std::size_t encodeMapChunk(const Header &h, std::uint16_t index, std::uint16_t count,
                           std::span<const std::uint8_t> text, const OverlayKey &key,
                           std::span<std::uint8_t> out) noexcept {
  const std::size_t payload = kMapChunkFixed + text.size();
  if (text.size() > kMaxMapChunk || out.size() < kOverhead + payload) {
    return 0;
  }
  auto p = out.subspan(kHeaderSize, payload);
  put16(p, 0, index);
  put16(p, 2, count);
  if (!text.empty()) {
    std::memmove(p.data() + kMapChunkFixed, text.data(), text.size());
  }
  return seal(MessageType::MapReply, h, payload, key, out);
}

} // namespace nvbox::osr::oracle

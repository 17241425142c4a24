#include "osr/wire.hpp"

#include "big_endian.hpp"

#include <algorithm>
#include <cstring>

namespace nvbox::osr::wire {

namespace {

using be::get16;
using be::get32;
using be::getEndpoint;
using be::put16;
using be::put32;
using be::putEndpoint;

bool knownType(std::uint8_t type) noexcept {
  return type >= static_cast<std::uint8_t>(PacketType::Data) &&
         type <= static_cast<std::uint8_t>(PacketType::Feedback);
}

// The checks parse() applies after authentication, shared with encode() so
// that the two can never disagree on what a valid header is.
ParseStatus validateFields(std::uint8_t type, std::uint8_t flags) noexcept {
  if (!knownType(type)) {
    return ParseStatus::BadType;
  }
  if ((flags & ~kKnownFlags) != 0) {
    return ParseStatus::BadFlags;
  }
  if (flags != 0 && type != static_cast<std::uint8_t>(PacketType::Data)) {
    return ParseStatus::BadFlags;
  }
  // EXPRESS is a whole packet outside the sequence: never a part of one.
  constexpr std::uint8_t whole = kFlagFirst | kFlagLast;
  if ((flags & kFlagExpress) != 0 && (flags & whole) != whole) {
    return ParseStatus::BadFlags;
  }
  return ParseStatus::Ok;
}

} // namespace

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
    return "bad flags";
  }
  return "unknown parse status";
}

std::size_t encode(const Header &header, std::span<const std::uint8_t> payload,
                   PacketAuthenticator &auth, std::span<std::uint8_t> out) noexcept {
  const std::size_t total = packetSize(payload.size());
  if (payload.size() > kMaxPayload || out.size() < total || header.path_id >= kMaxPaths ||
      validateFields(static_cast<std::uint8_t>(header.type), header.flags) != ParseStatus::Ok) {
    return 0;
  }
  // Payload first: a payload that already lies inside `out` (built in place)
  // must reach its place before the header can overwrite any of it.
  if (!payload.empty()) {
    std::memmove(out.data() + kHeaderSize, payload.data(), payload.size());
  }
  out[offset::kMagic] = kMagic;
  out[offset::kVersion] = kVersion;
  out[offset::kType] = static_cast<std::uint8_t>(header.type);
  out[offset::kPathFlags] = static_cast<std::uint8_t>((header.path_id << 4) | header.flags);
  put32(out, offset::kFlowId, header.flow_id);
  put32(out, offset::kSeq, header.seq);
  put16(out, offset::kPathSeq, header.path_seq);
  put32(out, offset::kSendUs, header.send_us);
  putEndpoint(out, offset::kDstAddr, header.dst);
  const std::size_t body = kHeaderSize + payload.size();
  if (!auth.computeTag(out.first(body), out.subspan(body).first<kTagSize>())) {
    return 0;
  }
  return total;
}

ParseResult parse(std::span<const std::uint8_t> packet, PacketAuthenticator &auth) noexcept {
  ParseResult result;
  if (packet.size() < kOverhead) {
    result.status = ParseStatus::TooShort;
    return result;
  }
  if (packet.size() > kMaxPacket) {
    result.status = ParseStatus::TooLong;
    return result;
  }
  // Magic and version are checked before the tag: they are fixed bytes at
  // fixed offsets, rejecting on them trusts nothing, it spares the hash for
  // stray traffic, and a peer speaking another version (version 2 began
  // "OS", so its second byte reads as version 0x53) is reported as such
  // rather than as a forgery.
  if (packet[offset::kMagic] != kMagic) {
    result.status = ParseStatus::BadMagic;
    return result;
  }
  if (packet[offset::kVersion] != kVersion) {
    result.status = ParseStatus::BadVersion;
    return result;
  }
  const std::size_t body = packet.size() - kTagSize;
  if (!auth.verify(packet.first(body), packet.subspan(body).first<kTagSize>())) {
    result.status = ParseStatus::BadTag;
    return result;
  }
  const std::uint8_t type = packet[offset::kType];
  const std::uint8_t flags = packet[offset::kPathFlags] & 0x0F;
  result.status = validateFields(type, flags);
  if (result.status != ParseStatus::Ok) {
    return result;
  }
  result.header = Header{.type = static_cast<PacketType>(type),
                         .flags = flags,
                         .path_id = static_cast<PathId>(packet[offset::kPathFlags] >> 4),
                         .path_seq = get16(packet, offset::kPathSeq),
                         .flow_id = get32(packet, offset::kFlowId),
                         .seq = get32(packet, offset::kSeq),
                         .send_us = get32(packet, offset::kSendUs),
                         .dst = getEndpoint(packet, offset::kDstAddr)};
  result.payload = packet.subspan(kHeaderSize, body - kHeaderSize);
  return result;
}

void encodeProbeInfo(const ProbeInfo &info, std::span<std::uint8_t, kProbeInfoSize> out) noexcept {
  putEndpoint(out, 0, info.back);
  put16(out, 6, info.next_path_seq);
  put32(out, 8, info.next_seq);
  put32(out, 12, info.min_rtt_us);
}

std::optional<ProbeInfo> parseProbeInfo(std::span<const std::uint8_t> payload) noexcept {
  if (payload.size() != kProbeInfoSize) {
    return std::nullopt;
  }
  ProbeInfo info{.back = getEndpoint(payload, 0),
                 .next_path_seq = get16(payload, 6),
                 .next_seq = get32(payload, 8),
                 .min_rtt_us = get32(payload, 12)};
  if (info.back.addr == 0 || info.back.port == 0) {
    return std::nullopt;
  }
  return info;
}

std::string_view toString(FeedbackStatus status) noexcept {
  switch (status) {
  case FeedbackStatus::Ok:
    return "ok";
  case FeedbackStatus::BadSize:
    return "bad size";
  case FeedbackStatus::BadCount:
    return "bad count";
  case FeedbackStatus::BadReserved:
    return "reserved bits set";
  case FeedbackStatus::BadPath:
    return "bad path id";
  }
  return "unknown feedback status";
}

std::size_t encodeFeedback(const Feedback &feedback, std::span<std::uint8_t> out) noexcept {
  const std::size_t size = kFeedbackHeaderSize + feedback.count * kPathFeedbackSize;
  if (feedback.count > kMaxPaths || out.size() < size) {
    return 0;
  }
  std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size), std::uint8_t{0});
  put32(out, 0, feedback.echo_us);
  put32(out, 4, feedback.epoch);
  out[8] = feedback.count;
  for (std::size_t i = 0; i < feedback.count; ++i) {
    const PathFeedback &p = feedback.paths[i];
    const std::size_t at = kFeedbackHeaderSize + i * kPathFeedbackSize;
    out[at] = p.path;
    put16(out, at + 2, p.path_seq);
    put32(out, at + 4, p.bytes);
    put32(out, at + 8, p.parts);
    put32(out, at + 12, p.lost);
    put32(out, at + 16, p.queue_min_us);
    put32(out, at + 20, p.queue_last_us);
    put32(out, at + 24, p.base_us);
  }
  return size;
}

FeedbackStatus parseFeedback(std::span<const std::uint8_t> payload, Feedback &out) noexcept {
  if (payload.size() < kFeedbackHeaderSize) {
    return FeedbackStatus::BadSize;
  }
  const std::uint8_t count = payload[8];
  if (count > kMaxPaths) {
    return FeedbackStatus::BadCount;
  }
  if (payload.size() != kFeedbackHeaderSize + count * kPathFeedbackSize) {
    return FeedbackStatus::BadSize;
  }
  if (payload[9] != 0 || payload[10] != 0 || payload[11] != 0) {
    return FeedbackStatus::BadReserved;
  }
  Feedback f;
  f.echo_us = get32(payload, 0);
  f.epoch = get32(payload, 4);
  f.count = count;
  std::uint32_t seen = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t at = kFeedbackHeaderSize + i * kPathFeedbackSize;
    if (payload[at + 1] != 0) {
      return FeedbackStatus::BadReserved;
    }
    const std::uint8_t path = payload[at];
    if (path >= kMaxPaths || ((seen >> path) & 1U) != 0) {
      return FeedbackStatus::BadPath;
    }
    seen |= 1U << path;
    f.paths[i] = PathFeedback{.path = path,
                              .path_seq = get16(payload, at + 2),
                              .bytes = get32(payload, at + 4),
                              .parts = get32(payload, at + 8),
                              .lost = get32(payload, at + 12),
                              .queue_min_us = get32(payload, at + 16),
                              .queue_last_us = get32(payload, at + 20),
                              .base_us = get32(payload, at + 24)};
  }
  out = f;
  return FeedbackStatus::Ok;
}

} // namespace nvbox::osr::wire

#include "osr/wire.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace nvbox::osr::wire {

namespace {

// Big-endian accessors: bytewise, so neither alignment nor host byte order
// matters and no reinterpret_cast is needed.
void put16(std::span<std::uint8_t> out, std::size_t at, std::uint16_t value) noexcept {
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value);
}

void put32(std::span<std::uint8_t> out, std::size_t at, std::uint32_t value) noexcept {
  put16(out, at, static_cast<std::uint16_t>(value >> 16));
  put16(out, at + 2, static_cast<std::uint16_t>(value));
}

void put64(std::span<std::uint8_t> out, std::size_t at, std::uint64_t value) noexcept {
  put32(out, at, static_cast<std::uint32_t>(value >> 32));
  put32(out, at + 4, static_cast<std::uint32_t>(value));
}

std::uint16_t get16(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

std::uint32_t get32(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return (std::uint32_t{get16(in, at)} << 16) | get16(in, at + 2);
}

std::uint64_t get64(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return (std::uint64_t{get32(in, at)} << 32) | get32(in, at + 4);
}

bool knownType(std::uint8_t type) noexcept {
  return type >= static_cast<std::uint8_t>(PacketType::Data) &&
         type <= static_cast<std::uint8_t>(PacketType::ProbeReply);
}

// The checks parse() applies after authentication, shared with encode() so
// that the two can never disagree on what a valid header is.
ParseStatus validateFields(std::uint8_t type, std::uint8_t flags, std::uint8_t k,
                           std::uint8_t part_index, std::uint8_t path_id) noexcept {
  if (!knownType(type)) {
    return ParseStatus::BadType;
  }
  if ((flags & ~kKnownFlags) != 0 ||
      ((flags & kFlagExpress) != 0 && type != static_cast<std::uint8_t>(PacketType::Data))) {
    return ParseStatus::BadFlags;
  }
  if (k == 0 || k > kMaxK) {
    return ParseStatus::BadK;
  }
  if (part_index >= k) {
    return ParseStatus::BadPartIndex;
  }
  if (path_id >= kMaxPaths) {
    return ParseStatus::BadPathId;
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
    return "unknown flags";
  case ParseStatus::BadK:
    return "k out of range";
  case ParseStatus::BadPartIndex:
    return "part index >= k";
  case ParseStatus::BadPathId:
    return "path id out of range";
  case ParseStatus::LengthMismatch:
    return "payload length mismatch";
  }
  return "unknown parse status";
}

std::size_t encode(const Header &header, std::span<const std::uint8_t> payload,
                   PacketAuthenticator &auth, std::span<std::uint8_t> out) noexcept {
  const std::size_t total = packetSize(payload.size());
  if (payload.size() > kMaxPayload || out.size() < total ||
      validateFields(static_cast<std::uint8_t>(header.type), header.flags, header.k,
                     header.part_index, header.path_id) != ParseStatus::Ok) {
    return 0;
  }
  // Payload first: a payload that already lies inside `out` (built in place)
  // must reach its place before the header can overwrite any of it.
  if (!payload.empty()) {
    std::memmove(out.data() + kHeaderSize, payload.data(), payload.size());
  }
  put16(out, offset::kMagic, kMagic);
  out[offset::kVersion] = kVersion;
  out[offset::kType] = static_cast<std::uint8_t>(header.type);
  out[offset::kFlags] = header.flags;
  out[offset::kPartIndex] = header.part_index;
  out[offset::kK] = header.k;
  out[offset::kPathId] = header.path_id;
  put32(out, offset::kFlowId, header.flow_id);
  put32(out, offset::kSeq, header.seq);
  put32(out, offset::kSegment, header.segment);
  put64(out, offset::kSendNs, header.send_ns);
  put32(out, offset::kDstAddr, header.dst.addr);
  put16(out, offset::kDstPort, header.dst.port);
  put16(out, offset::kLength, static_cast<std::uint16_t>(payload.size()));
  const auto nonce = out.subspan(offset::kNonce).first<PacketAuthenticator::kNonceSize>();
  auth.nextNonce(nonce);
  const std::size_t body = kHeaderSize + payload.size();
  if (!auth.computeTag(out.first(body), nonce, out.subspan(body).first<kTagSize>())) {
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
  // stray traffic, and a peer speaking another version is reported as such
  // rather than as a forgery.
  if (get16(packet, offset::kMagic) != kMagic) {
    result.status = ParseStatus::BadMagic;
    return result;
  }
  if (packet[offset::kVersion] != kVersion) {
    result.status = ParseStatus::BadVersion;
    return result;
  }
  const std::size_t body = packet.size() - kTagSize;
  std::array<std::uint8_t, kTagSize> expected{};
  if (!auth.computeTag(packet.first(body),
                       packet.subspan(offset::kNonce).first<PacketAuthenticator::kNonceSize>(),
                       expected) ||
      crypto_verify_16(expected.data(), packet.data() + body) != 0) {
    result.status = ParseStatus::BadTag;
    return result;
  }
  const std::uint8_t type = packet[offset::kType];
  const std::uint8_t flags = packet[offset::kFlags];
  const std::uint8_t part_index = packet[offset::kPartIndex];
  const std::uint8_t k = packet[offset::kK];
  const std::uint8_t path_id = packet[offset::kPathId];
  result.status = validateFields(type, flags, k, part_index, path_id);
  if (result.status != ParseStatus::Ok) {
    return result;
  }
  const std::size_t length = get16(packet, offset::kLength);
  if (length != body - kHeaderSize) {
    result.status = ParseStatus::LengthMismatch;
    return result;
  }
  result.header = Header{.type = static_cast<PacketType>(type),
                         .flags = flags,
                         .flow_id = get32(packet, offset::kFlowId),
                         .seq = get32(packet, offset::kSeq),
                         .segment = get32(packet, offset::kSegment),
                         .part_index = part_index,
                         .k = k,
                         .path_id = path_id,
                         .send_ns = get64(packet, offset::kSendNs),
                         .dst = Endpoint{.addr = get32(packet, offset::kDstAddr),
                                         .port = get16(packet, offset::kDstPort)}};
  result.payload = packet.subspan(kHeaderSize, length);
  return result;
}

} // namespace nvbox::osr::wire

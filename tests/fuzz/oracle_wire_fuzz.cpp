// libFuzzer target for the path oracle's control messages (osr/oracle_wire)
// and the table behind them (osr::OneHopTable).
//
// Each input is used three ways, with a fixed key:
//  1. parsed as is — every pre-authentication check and the tag comparison
//     on arbitrary bytes;
//  2. parsed with a valid tag appended (computed over the whole input), so
//     the header and payload checks behind authentication are reached;
//  3. cut into records [ctrl:1][len:2][bytes:len]; ctrl can stamp a valid
//     header (magic, version, a type from ctrl — every message kind —, zero
//     flags and reserved bytes, the true payload length, a valid sender)
//     over the record, which is then tagged and parsed: without that help
//     the fuzzer rarely finds the magic and never a matching length.
// A record whose ctrl says "structured" is instead read as the fields of a
// message of the kind ctrl names (members drawn from 8 endpoints, so reports
// form two-hop paths), encoded with the encoders — which must produce
// something parse() accepts — and checked like the rest.
// Every message that parses must keep parse()'s promises: the payload views
// the datagram, the decoders read only inside it, and re-encoding the decoded
// message with the same header and key gives back the very same bytes (the
// format has no slack: every byte is a field or a checked reserved zero).
// REPORTs are fed to a small OneHopTable and QUERYs answered from it; each
// answer must encode and parse back to itself. A broken promise traps.
#include "osr/one_hop_table.hpp"
#include "osr/oracle_wire.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace {

using namespace nvbox::osr;
namespace o = nvbox::osr::oracle;

const OverlayKey &fuzzKey() {
  static const OverlayKey key = [] {
    std::array<std::uint8_t, OverlayKey::kSize> bytes{};
    bytes.fill(0xA5);
    return OverlayKey::fromBytes(bytes);
  }();
  return key;
}

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

std::array<std::uint8_t, o::kMaxDatagram + 1> g_scratch;
std::array<std::uint8_t, o::kMaxDatagram + 1> g_reencoded;

std::span<std::uint8_t> stage(std::span<const std::uint8_t> body) {
  const std::size_t size = std::min(body.size(), g_scratch.size() - o::kTagSize);
  std::memmove(g_scratch.data(), body.data(), size);
  return std::span(g_scratch).first(size);
}

std::span<const std::uint8_t> seal(std::span<std::uint8_t> body) {
  check(o::computeTag(body, fuzzKey(),
                      std::span(g_scratch).subspan(body.size()).first<o::kTagSize>()));
  return std::span(g_scratch).first(body.size() + o::kTagSize);
}

bool sameBytes(std::span<const std::uint8_t> a, std::size_t size) {
  return size == a.size() && std::equal(a.begin(), a.end(), g_reencoded.begin());
}

// Checks a parsed message and feeds it to the table.
void exercise(std::span<const std::uint8_t> datagram, const o::Message &m, OneHopTable &table,
              Nanos now) {
  if (!m.ok()) {
    check(m.payload.empty());
    return;
  }
  check(datagram.size() >= o::kOverhead && datagram.size() <= o::kMaxDatagram);
  check(m.payload.data() == datagram.data() + o::kHeaderSize &&
        m.payload.size() + o::kOverhead == datagram.size());
  check(m.header.sender.addr != 0 && m.header.sender.port != 0);
  const std::span<std::uint8_t> out(g_reencoded);
  const o::Header &h = m.header;
  switch (h.type) {
  case o::MessageType::Report: {
    const o::Report r = o::decodeReport(m);
    check(r.entries.size() % o::kReportEntrySize == 0 && r.count() <= o::kMaxReportEntries);
    static std::array<o::ReportEntry, o::kMaxReportEntries> entries;
    for (std::size_t i = 0; i < r.count(); ++i) {
      entries[i] = r.entry(i);
      check(entries[i].peer.addr != 0 && entries[i].peer.port != 0 &&
            entries[i].loss <= o::kLossScale);
    }
    const std::span<const o::ReportEntry> view(entries.data(), r.count());
    check(sameBytes(datagram, o::encodeReport(h, r.group.view(), view, fuzzKey(), out)));
    table.report(h.sender, r.group.view(), view, now);
    check(table.members() <= 64);
    break;
  }
  case o::MessageType::Query: {
    const o::Query q = o::decodeQuery(m);
    check(q.k >= 1 && q.k <= kMaxK);
    check(sameBytes(datagram, o::encodeQuery(h, q, fuzzKey(), out)));
    const o::Answer a = table.query(q.src, q.dst, q.k, q.objective, now);
    check(a.count <= q.k);
    if (a.status == o::AnswerStatus::Ok) {
      for (std::size_t i = 0; i < a.count; ++i) {
        check(!(a.relays[i].relay == q.src) && !(a.relays[i].relay == q.dst));
        check(a.relays[i].loss <= o::kLossScale);
      }
    }
    o::Header reply = h;
    reply.type = o::MessageType::Answer;
    const std::size_t size = o::encodeAnswer(reply, a, fuzzKey(), out);
    check(size != 0);
    const o::Message back = o::parse(std::span(g_reencoded).first(size), fuzzKey());
    check(back.ok() && back.header.type == o::MessageType::Answer);
    const o::Answer decoded = o::decodeAnswer(back);
    check(decoded.count == a.count && decoded.status == a.status &&
          decoded.objective == a.objective);
    for (std::size_t i = 0; i < a.count; ++i) {
      check(decoded.relays[i] == a.relays[i]);
    }
    break;
  }
  case o::MessageType::Answer: {
    const o::Answer a = o::decodeAnswer(m);
    check(a.count <= o::kMaxAnswer);
    check(sameBytes(datagram, o::encodeAnswer(h, a, fuzzKey(), out)));
    break;
  }
  case o::MessageType::Hello:
  case o::MessageType::HelloAck: {
    const o::Hello hello = o::decodeHello(m);
    check(hello.peer.addr != 0 && hello.peer.port != 0);
    check(sameBytes(datagram, o::encodeHello(h, hello, fuzzKey(), out)));
    break;
  }
  case o::MessageType::MapRequest:
    check(m.payload.empty());
    check(sameBytes(datagram, o::encodeMapRequest(h, fuzzKey(), out)));
    break;
  case o::MessageType::MapReply: {
    const o::MapChunk c = o::decodeMapChunk(m);
    check(c.count != 0 && c.index < c.count && c.text.size() <= o::kMaxMapChunk);
    check(sameBytes(datagram, o::encodeMapChunk(h, c.index, c.count, c.text, fuzzKey(), out)));
    break;
  }
  default:
    __builtin_trap();
  }
}

// Reads fields from a record; zeros once it is exhausted.
class Reader {
public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::uint8_t u8() { return at_ < bytes_.size() ? bytes_[at_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
  std::uint32_t u32() { return std::uint32_t{u16()} << 16 | u16(); }
  std::uint64_t u64() { return std::uint64_t{u32()} << 32 | u32(); }
  // One of 8 members, so that reports form two-hop paths queries can use.
  Endpoint member() { return Endpoint{.addr = 0x0A000001U + (u8() % 8U), .port = 7400}; }
  std::string_view group() {
    static constexpr std::array<std::string_view, 4> kGroups{"", "a", "b", "host-1.x_y"};
    return kGroups[u8() % kGroups.size()];
  }

private:
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
};

// Builds a message of kind `kind` from the record's bytes with the encoders,
// which promise that parse() accepts whatever they produce.
void structured(std::uint8_t kind, std::span<const std::uint8_t> record, OneHopTable &table,
                Nanos now) {
  Reader in(record);
  o::Header h{.type = o::MessageType::Report,
              .sender = in.member(),
              .nonce = in.u64(),
              .timestamp_ns = static_cast<std::int64_t>(in.u64())};
  static std::array<std::uint8_t, o::kMaxDatagram> out;
  std::size_t size = 0;
  switch (kind) {
  case 0:
  case 1:
  case 2: {
    const std::string_view group = in.group();
    std::array<o::ReportEntry, 12> entries{};
    const std::size_t count = in.u8() % (entries.size() + 1);
    for (std::size_t i = 0; i < count; ++i) {
      entries[i].peer = in.member();
      const std::uint16_t loss = in.u16();
      entries[i].loss = (loss & 0x8000U) != 0 ? static_cast<std::uint16_t>(loss % 10001U) : 0;
      entries[i].delay_us = in.u32();
      entries[i].rate = in.u64();
    }
    size = o::encodeReport(h, group, std::span(entries).first(count), fuzzKey(), out);
    break;
  }
  case 3:
    size = o::encodeQuery(h,
                          o::Query{.src = in.member(),
                                   .dst = in.member(),
                                   .k = static_cast<std::uint8_t>(1 + in.u8() % kMaxK),
                                   .objective = static_cast<o::Objective>(1 + in.u8() % 3)},
                          fuzzKey(), out);
    break;
  case 4: {
    o::Answer a{.src = in.member(),
                .dst = in.member(),
                .objective = static_cast<o::Objective>(1 + in.u8() % 3),
                .status = static_cast<o::AnswerStatus>(in.u8() % 3),
                .direct_known = (in.u8() & 1U) != 0,
                .direct_delay_us = in.u32(),
                .direct_rate = in.u64(),
                .direct_age_ms = in.u32() & 0xFFFFFFU,
                .count = static_cast<std::uint8_t>(in.u8() % (o::kMaxAnswer + 1))};
    for (std::size_t i = 0; i < a.count; ++i) {
      auto &r = a.relays[i];
      r.relay = in.member();
      r.beats_direct = (in.u8() & 1U) != 0;
      r.delay_us = in.u32();
      r.rate = in.u64();
      r.loss = static_cast<std::uint16_t>(in.u16() % 10001U);
      r.age_ms = in.u32();
      r.group.assign(in.group());
    }
    h.type = o::MessageType::Answer;
    size = o::encodeAnswer(h, a, fuzzKey(), out);
    break;
  }
  case 5:
    h.type = (in.u8() & 1U) != 0 ? o::MessageType::Hello : o::MessageType::HelloAck;
    size = o::encodeHello(h, o::Hello{.peer = in.member()}, fuzzKey(), out);
    break;
  case 6: {
    const std::uint16_t count = static_cast<std::uint16_t>(1 + in.u8() % 4);
    const std::uint16_t index = static_cast<std::uint16_t>(in.u8() % count);
    const std::size_t used = std::min<std::size_t>(record.size(), 8 + 8 + 1 + 2);
    size = o::encodeMapChunk(
        h, index, count,
        record.subspan(used).first(std::min(record.size() - used, o::kMaxMapChunk)), fuzzKey(),
        out);
    break;
  }
  default:
    size = o::encodeMapRequest(h, fuzzKey(), out);
    break;
  }
  check(size != 0);
  const auto datagram = std::span<const std::uint8_t>(out).first(size);
  const o::Message m = o::parse(datagram, fuzzKey());
  check(m.ok());
  exercise(datagram, m, table, now);
}

enum Ctrl : std::uint8_t {
  kStampHeader = 0x80, // a valid header over the record, type from kTypeMask
  kTypeMask = 0x07,    // 0..7 -> type 1..7 (7: an unknown type, 0)
  kClockMask = 0x70,   // advance the clock by 0..7 s (measurements age out)
  kStructured = 0x08,  // without kStampHeader: build a message of kind
                       // kTypeMask from the record's bytes with the encoders
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  OneHopTable table(OneHopTable::Config{.max_age = std::chrono::seconds(10), .max_members = 64});
  Nanos now = std::chrono::seconds(1);

  exercise(input, o::parse(input, fuzzKey()), table, now);
  {
    const auto datagram = seal(stage(input));
    exercise(datagram, o::parse(datagram, fuzzKey()), table, now);
  }

  std::size_t at = 0;
  while (at + 3 <= input.size()) {
    const std::uint8_t ctrl = input[at];
    const std::size_t len = std::min<std::size_t>(
        static_cast<std::size_t>(input[at + 1]) << 8 | input[at + 2], input.size() - at - 3);
    const auto record = input.subspan(at + 3, len);
    at += 3 + len;
    now += std::chrono::seconds((ctrl & kClockMask) >> 4);
    if ((ctrl & (kStampHeader | kStructured)) == kStructured) {
      structured(ctrl & kTypeMask, record, table, now);
      continue;
    }
    // The record is the datagram minus its tag; a stamped header goes over
    // its first 16 bytes (nonce and timestamp stay the fuzzer's).
    std::array<std::uint8_t, 4096> buffer{};
    const std::size_t n = std::min(record.size(), buffer.size());
    std::copy_n(record.begin(), n, buffer.begin());
    std::size_t bodySize = n;
    if ((ctrl & kStampHeader) != 0) {
      bodySize = std::max(n, o::kHeaderSize);
      const std::size_t payload = bodySize - o::kHeaderSize;
      const auto type = static_cast<std::uint8_t>((ctrl & kTypeMask) == 7 ? 0 : (ctrl & 7) + 1);
      buffer[o::offset::kMagic] = o::kMagic >> 8;
      buffer[o::offset::kMagic + 1] = o::kMagic & 0xFF;
      buffer[o::offset::kVersion] = o::kVersion;
      buffer[o::offset::kType] = type;
      buffer[o::offset::kFlags] = 0;
      buffer[o::offset::kReserved1] = 0;
      buffer[o::offset::kLength] = static_cast<std::uint8_t>(payload >> 8);
      buffer[o::offset::kLength + 1] = static_cast<std::uint8_t>(payload);
      buffer[o::offset::kSenderAddr] |= 0x01;
      buffer[o::offset::kSenderPort + 1] |= 0x01;
      buffer[o::offset::kReserved2] = 0;
      buffer[o::offset::kReserved2 + 1] = 0;
    }
    const auto datagram = seal(stage(std::span(buffer).first(bodySize)));
    exercise(datagram, o::parse(datagram, fuzzKey()), table, now);
  }
  // Whatever went in, every pair still answers consistently.
  for (OneHopTable::MemberId s = 0; s < table.members(); ++s) {
    for (OneHopTable::MemberId d = 0; d < table.members() && d < 8; ++d) {
      const o::Answer a = table.query(table.member(s).endpoint, table.member(d).endpoint, kMaxK,
                                      o::Objective::Disjoint, now);
      check(a.count <= kMaxK);
    }
  }
  return 0;
}

// oracle_wire: every message round-trips; every field is checked on its own
// (one corrupted field → that field's rejection, after a valid re-seal);
// forgeries and truncations are refused; ReplayGuard refuses stale, future
// and replayed messages.
#include "osr/oracle_wire.hpp"
#include "osr/replay_guard.hpp"
#include "osr/wire.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace nvbox::osr::oracle {
namespace {

OverlayKey key(std::uint8_t fill = 0x42) {
  std::array<std::uint8_t, OverlayKey::kSize> bytes{};
  bytes.fill(fill);
  bytes[0] = 1;
  return OverlayKey::fromBytes(bytes);
}

const Endpoint kA{0x0A000001, 7400};
const Endpoint kB{0x0A000002, 7400};
const Endpoint kC{0x0A000003, 7401};

Header header(MessageType t = MessageType::Report) {
  return Header{.type = t, .sender = kA, .nonce = 0x0102030405060708ULL, .timestamp_ns = 1234567};
}

std::vector<std::uint8_t> buffer() {
  return std::vector<std::uint8_t>(kMaxDatagram);
}

// Re-tags a datagram after a test changed its bytes, so that the field
// checks behind authentication are reached.
void reseal(std::vector<std::uint8_t> &d) {
  const std::size_t body = d.size() - kTagSize;
  computeTag(std::span(d).first(body), key(), std::span(d).subspan(body).first<kTagSize>());
}

std::vector<std::uint8_t> sampleReport() {
  const std::vector<ReportEntry> entries{{kB, 100, 5000, 1'000'000}, {kC, 0, 7, 0}};
  auto out = buffer();
  out.resize(encodeReport(header(), "host-1", entries, key(), out));
  return out;
}

TEST(OracleWire, ReportRoundTrips) {
  const auto d = sampleReport();
  ASSERT_EQ(d.size(), kOverhead + 3 + 6 + 2 * kReportEntrySize);
  const Message m = parse(d, key());
  ASSERT_TRUE(m.ok()) << toString(m.status);
  EXPECT_EQ(m.header.type, MessageType::Report);
  EXPECT_EQ(m.header.sender, kA);
  EXPECT_EQ(m.header.nonce, 0x0102030405060708ULL);
  EXPECT_EQ(m.header.timestamp_ns, 1234567);
  const Report r = decodeReport(m);
  EXPECT_EQ(r.group.view(), "host-1");
  ASSERT_EQ(r.count(), 2U);
  EXPECT_EQ(r.entry(0), (ReportEntry{kB, 100, 5000, 1'000'000}));
  EXPECT_EQ(r.entry(1), (ReportEntry{kC, 0, 7, 0}));
}

TEST(OracleWire, QueryAnswerHelloMapRoundTrip) {
  auto out = buffer();
  const Query q{.src = kA, .dst = kB, .k = 16, .objective = Objective::Disjoint};
  out.resize(encodeQuery(header(MessageType::Query), q, key(), out));
  Message m = parse(out, key());
  ASSERT_TRUE(m.ok()) << toString(m.status);
  EXPECT_EQ(decodeQuery(m), q);

  Answer a;
  a.src = kA;
  a.dst = kB;
  a.objective = Objective::Rate;
  a.direct_known = true;
  a.direct_delay_us = 40000;
  a.direct_rate = 99;
  a.direct_age_ms = 1234;
  a.count = 2;
  a.relays[0] = AnswerRelay{kC, true, 100, 5, 3, 77, {}};
  a.relays[0].group.assign("g1");
  a.relays[1] = AnswerRelay{Endpoint{0x0A000009, 1}, false, 0xFFFFFFFF, ~0ULL, 10000, 0, {}};
  a.relays[1].group.assign("0123456789abcdef");
  out = buffer();
  out.resize(encodeAnswer(header(MessageType::Answer), a, key(), out));
  m = parse(out, key());
  ASSERT_TRUE(m.ok()) << toString(m.status);
  const Answer b = decodeAnswer(m);
  EXPECT_EQ(b.src, kA);
  EXPECT_EQ(b.objective, Objective::Rate);
  EXPECT_TRUE(b.direct_known);
  EXPECT_EQ(b.direct_delay_us, 40000U);
  EXPECT_EQ(b.direct_rate, 99U);
  EXPECT_EQ(b.direct_age_ms, 1234U);
  ASSERT_EQ(b.count, 2);
  EXPECT_EQ(b.relays[0], a.relays[0]);
  EXPECT_EQ(b.relays[1], a.relays[1]);

  for (const auto t : {MessageType::Hello, MessageType::HelloAck}) {
    out = buffer();
    out.resize(encodeHello(header(t), Hello{kC}, key(), out));
    m = parse(out, key());
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m.header.type, t);
    EXPECT_EQ(decodeHello(m).peer, kC);
  }
  out = buffer();
  out.resize(encodeMapRequest(header(), key(), out));
  ASSERT_TRUE(parse(out, key()).ok());
  const std::string text = "{\"x\":1}";
  out = buffer();
  out.resize(encodeMapChunk(
      header(), 2, 3, std::span(reinterpret_cast<const std::uint8_t *>(text.data()), text.size()),
      key(), out));
  m = parse(out, key());
  ASSERT_TRUE(m.ok());
  const MapChunk c = decodeMapChunk(m);
  EXPECT_EQ(c.index, 2);
  EXPECT_EQ(c.count, 3);
  EXPECT_EQ(std::string(c.text.begin(), c.text.end()), text);
}

TEST(OracleWire, EncodersRefuseWhatWouldNotParse) {
  auto out = buffer();
  EXPECT_EQ(encodeReport(header(), "bad group!", {}, key(), out), 0U);
  EXPECT_EQ(encodeReport(header(), "seventeen-chars-x", {}, key(), out), 0U);
  const std::vector<ReportEntry> badLoss{{kB, 10001, 0, 0}};
  EXPECT_EQ(encodeReport(header(), "", badLoss, key(), out), 0U);
  EXPECT_EQ(encodeQuery(header(), Query{kA, kB, 0, Objective::Delay}, key(), out), 0U);
  EXPECT_EQ(encodeQuery(header(), Query{kA, kB, 17, Objective::Delay}, key(), out), 0U);
  EXPECT_EQ(encodeQuery(header(), Query{kA, Endpoint{}, 1, Objective::Delay}, key(), out), 0U);
  Header noSender = header();
  noSender.sender = Endpoint{};
  EXPECT_EQ(encodeMapRequest(noSender, key(), out), 0U);
  std::vector<std::uint8_t> small(kOverhead);
  EXPECT_EQ(encodeQuery(header(), Query{kA, kB, 1, Objective::Delay}, key(), small), 0U);
}

TEST(OracleWire, ForgedTruncatedAndForeignDatagramsAreRejected) {
  auto d = sampleReport();
  EXPECT_EQ(parse(d, key(0x43)).status, ParseStatus::BadTag); // not a member
  auto flipped = d;
  flipped[kHeaderSize + 4] ^= 1; // payload changed, tag not
  EXPECT_EQ(parse(flipped, key()).status, ParseStatus::BadTag);
  EXPECT_EQ(parse(std::span(d).first(kOverhead - 1), key()).status, ParseStatus::TooShort);
  std::vector<std::uint8_t> huge(kMaxDatagram + 1, 0);
  EXPECT_EQ(parse(huge, key()).status, ParseStatus::TooLong);
  auto magic = d;
  magic[0] = 0x4F;
  magic[1] = 0x53; // a tunnel packet's magic
  EXPECT_EQ(parse(magic, key()).status, ParseStatus::BadMagic);
  auto version = d;
  version[offset::kVersion] = 2;
  EXPECT_EQ(parse(version, key()).status, ParseStatus::BadVersion);
}

struct FieldCase {
  const char *name;
  std::function<std::vector<std::uint8_t>()> make; // a valid datagram
  std::size_t at;                                  // byte to change
  std::uint8_t value;
  ParseStatus expected;
};

std::vector<std::uint8_t> sampleQuery() {
  auto out = buffer();
  out.resize(
      encodeQuery(header(MessageType::Query), Query{kA, kB, 3, Objective::Delay}, key(), out));
  return out;
}
std::vector<std::uint8_t> sampleAnswer() {
  Answer a;
  a.src = kA;
  a.dst = kB;
  a.count = 1;
  a.relays[0].relay = kC;
  auto out = buffer();
  out.resize(encodeAnswer(header(MessageType::Answer), a, key(), out));
  return out;
}
std::vector<std::uint8_t> sampleHello() {
  auto out = buffer();
  out.resize(encodeHello(header(MessageType::Hello), Hello{kB}, key(), out));
  return out;
}
std::vector<std::uint8_t> sampleChunk() {
  const std::uint8_t text[] = {'{', '}'};
  auto out = buffer();
  out.resize(encodeMapChunk(header(), 0, 1, text, key(), out));
  return out;
}

class OracleWireField : public ::testing::TestWithParam<FieldCase> {};

TEST_P(OracleWireField, IsRejectedWithItsReason) {
  auto d = GetParam().make();
  ASSERT_TRUE(parse(d, key()).ok());
  d[GetParam().at] = GetParam().value;
  reseal(d);
  const Message m = parse(d, key());
  EXPECT_EQ(m.status, GetParam().expected) << GetParam().name << ": got " << toString(m.status);
  EXPECT_TRUE(m.payload.empty());
}

constexpr std::size_t P = kHeaderSize; // payload offset
// Report payload: [glen=6]["host-1"][count:2] entries at P+9.
INSTANTIATE_TEST_SUITE_P(
    Fields, OracleWireField,
    ::testing::Values(
        FieldCase{"type", sampleReport, offset::kType, 0, ParseStatus::BadType},
        FieldCase{"type high", sampleReport, offset::kType, 8, ParseStatus::BadType},
        FieldCase{"flags", sampleReport, offset::kFlags, 1, ParseStatus::BadFlags},
        FieldCase{"reserved1", sampleReport, offset::kReserved1, 1, ParseStatus::BadReserved},
        FieldCase{"reserved2", sampleReport, offset::kReserved2 + 1, 1, ParseStatus::BadReserved},
        FieldCase{"length", sampleReport, offset::kLength + 1, 0, ParseStatus::LengthMismatch},
        FieldCase{"group length", sampleReport, P, 17, ParseStatus::BadGroup},
        FieldCase{"group char", sampleReport, P + 2, ' ', ParseStatus::BadGroup},
        FieldCase{"count", sampleReport, P + 8, 3, ParseStatus::BadCount},
        FieldCase{"entry loss", sampleReport, P + 9 + 6, 0xFF, ParseStatus::BadLoss},
        FieldCase{"query k 0", sampleQuery, P + 12, 0, ParseStatus::BadK},
        FieldCase{"query k 17", sampleQuery, P + 12, 17, ParseStatus::BadK},
        FieldCase{"query objective", sampleQuery, P + 13, 4, ParseStatus::BadObjective},
        FieldCase{"query reserved", sampleQuery, P + 15, 1, ParseStatus::BadPayloadReserved},
        FieldCase{"answer status", sampleAnswer, P + 13, 3, ParseStatus::BadStatus},
        FieldCase{"answer objective", sampleAnswer, P + 12, 0, ParseStatus::BadObjective},
        FieldCase{"answer count", sampleAnswer, P + 15, 2, ParseStatus::BadCount},
        FieldCase{"answer flags", sampleAnswer, P + 14, 2, ParseStatus::BadPayloadReserved},
        FieldCase{"answer group", sampleAnswer, P + 32 + 28, '!', ParseStatus::BadGroup},
        FieldCase{"answer relay reserved", sampleAnswer, P + 32 + 7, 1,
                  ParseStatus::BadPayloadReserved},
        FieldCase{"answer loss", sampleAnswer, P + 32 + 20, 0xFF, ParseStatus::BadLoss},
        FieldCase{"hello reserved", sampleHello, P + 6, 1, ParseStatus::BadPayloadReserved},
        FieldCase{"chunk count", sampleChunk, P + 3, 0, ParseStatus::BadChunk},
        FieldCase{"chunk index", sampleChunk, P + 1, 1, ParseStatus::BadChunk}));

// Fields whose "Ok" above means: zeroing one byte of a multi-byte field may
// leave it valid; zeroing the whole field must not.
TEST(OracleWire, ZeroEndpointsAreRejected) {
  auto d = sampleHello();
  for (std::size_t i = 0; i < 4; ++i) {
    d[offset::kSenderAddr + i] = 0;
  }
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadSender);
  d = sampleHello();
  d[P + 4] = 0;
  d[P + 5] = 0;
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadEndpoint);
  d = sampleReport();
  d[P + 9 + 4] = 0;
  d[P + 9 + 5] = 0;
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadEndpoint);
  d = sampleQuery();
  d[P + 10] = 0;
  d[P + 11] = 0;
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadEndpoint);
}

TEST(OracleWire, SizesAreCheckedPerType) {
  auto d = sampleHello();
  d.insert(d.end() - kTagSize, 0); // one payload byte more
  d[offset::kLength + 1] = static_cast<std::uint8_t>(kHelloSize + 1);
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadSize);
  d = sampleQuery();
  d.erase(d.end() - kTagSize - 1);
  d[offset::kLength + 1] = static_cast<std::uint8_t>(kQuerySize - 1);
  reseal(d);
  EXPECT_EQ(parse(d, key()).status, ParseStatus::BadSize);
}

TEST(ReplayGuard, RefusesStaleFutureAndReplayed) {
  using std::chrono::seconds;
  ReplayGuard guard(seconds(30), 2);
  const Nanos now = seconds(1000);
  const std::int64_t t = now.count();
  EXPECT_EQ(guard.accept(kA, t, now), ReplayGuard::Verdict::Accepted);
  EXPECT_EQ(guard.accept(kA, t, now), ReplayGuard::Verdict::Replayed);     // same message again
  EXPECT_EQ(guard.accept(kA, t - 1, now), ReplayGuard::Verdict::Replayed); // older one
  EXPECT_EQ(guard.accept(kA, t + 1, now), ReplayGuard::Verdict::Accepted);
  EXPECT_EQ(guard.accept(kB, t - Nanos(seconds(31)).count(), now), ReplayGuard::Verdict::Stale);
  EXPECT_EQ(guard.accept(kB, t + Nanos(seconds(31)).count(), now), ReplayGuard::Verdict::Future);
  EXPECT_EQ(guard.accept(kB, t, now), ReplayGuard::Verdict::Accepted);
  EXPECT_EQ(guard.accept(kC, t, now), ReplayGuard::Verdict::Full); // 2 live senders
  // Later, A's and B's entries are older than the window: they make room.
  const Nanos later = now + seconds(60);
  EXPECT_EQ(guard.accept(kC, later.count(), later), ReplayGuard::Verdict::Accepted);
  EXPECT_EQ(guard.counters().replayed, 2U);
  EXPECT_EQ(guard.counters().stale, 1U);
  EXPECT_EQ(guard.counters().future, 1U);
  EXPECT_EQ(guard.counters().full, 1U);
}

} // namespace
} // namespace nvbox::osr::oracle

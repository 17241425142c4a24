#include "osr/wire.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace nvbox::osr::wire {
namespace {

OverlayKey testKey(std::uint8_t fill = 0x42) {
  std::array<std::uint8_t, OverlayKey::kSize> bytes{};
  bytes.fill(fill);
  bytes[0] = 0x01; // not a uniform key, so byte order mistakes in the key show
  return OverlayKey::fromBytes(bytes);
}

Header fullHeader() {
  return Header{.type = PacketType::Data,
                .flags = kFlagFirst | kFlagLast,
                .path_id = 15,
                .path_seq = 0xBEEF,
                .flow_id = 0xA1B2C3D4,
                .seq = 0xFFFFFFFF,
                .send_us = 0x89ABCDEF,
                .dst = Endpoint{.addr = 0x0A090002, .port = 7400}};
}

std::vector<std::uint8_t> patternPayload(std::size_t size) {
  std::vector<std::uint8_t> payload(size);
  for (std::size_t i = 0; i < size; ++i) {
    payload[i] = static_cast<std::uint8_t>(i * 7 + 3);
  }
  return payload;
}

std::vector<std::uint8_t> encodeOrDie(const Header &header, std::span<const std::uint8_t> payload,
                                      PacketAuthenticator &auth) {
  std::vector<std::uint8_t> packet(packetSize(payload.size()));
  const std::size_t written = encode(header, payload, auth, packet);
  EXPECT_EQ(written, packet.size());
  return packet;
}

// Rewrites the tag after a test has tampered with the header, so that the
// tampered field, not authentication, is what parse() must catch.
void retag(std::vector<std::uint8_t> &packet, PacketAuthenticator &auth) {
  const std::size_t body = packet.size() - kTagSize;
  ASSERT_TRUE(auth.computeTag(std::span(packet).first(body),
                              std::span(packet).subspan(body).first<kTagSize>()));
}

TEST(OsrWire, RoundTripsEveryFieldForEveryTypeAndSize) {
  PacketAuthenticator auth(testKey());
  for (const PacketType type :
       {PacketType::Data, PacketType::Probe, PacketType::ProbeReply, PacketType::Feedback}) {
    for (const std::size_t size :
         {std::size_t{0}, std::size_t{1}, std::size_t{1432}, kMaxPayload}) {
      Header header = fullHeader();
      header.type = type;
      header.flags = type == PacketType::Data ? header.flags : 0;
      const auto payload = patternPayload(size);
      const auto packet = encodeOrDie(header, payload, auth);
      const ParseResult result = parse(packet, auth);
      ASSERT_TRUE(result.ok()) << toString(result.status) << " size=" << size;
      EXPECT_EQ(result.header, header);
      EXPECT_EQ(std::vector(result.payload.begin(), result.payload.end()), payload);
      // The payload is a view into the datagram, not a copy.
      EXPECT_EQ(result.payload.data(), packet.data() + kHeaderSize);
    }
  }
}

TEST(OsrWire, RoundTripsMinimumValues) {
  PacketAuthenticator auth(testKey());
  const Header header{}; // all zero: a DATA part in the middle of a segment
  const auto packet = encodeOrDie(header, {}, auth);
  const ParseResult result = parse(packet, auth);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.header, header);
  EXPECT_TRUE(result.payload.empty());
}

TEST(OsrWire, LaysOutFieldsBigEndianAtDocumentedOffsets) {
  PacketAuthenticator auth(testKey());
  const std::array<std::uint8_t, 3> payload{0xAA, 0xBB, 0xCC};
  const auto packet = encodeOrDie(fullHeader(), payload, auth);
  const std::vector<std::uint8_t> expected_header{
      0x4F,                   // magic
      0x03,                   // version
      0x01,                   // type DATA
      0xF5,                   // path id 15, flags FIRST | LAST
      0xA1, 0xB2, 0xC3, 0xD4, // flow id
      0xFF, 0xFF, 0xFF, 0xFF, // seq
      0xBE, 0xEF,             // path seq
      0x89, 0xAB, 0xCD, 0xEF, // send µs
      0x0A, 0x09, 0x00, 0x02, // destination 10.9.0.2
      0x1C, 0xE8,             // destination port 7400
  };
  ASSERT_EQ(packet.size(), kHeaderSize + payload.size() + kTagSize);
  ASSERT_EQ(kHeaderSize, expected_header.size());
  EXPECT_EQ(std::vector(packet.begin(), packet.begin() + kHeaderSize), expected_header);
  EXPECT_EQ(packet[kHeaderSize], 0xAA);
  EXPECT_EQ(packet[kHeaderSize + 2], 0xCC);
  std::array<std::uint8_t, kTagSize> tag{};
  ASSERT_TRUE(auth.computeTag(std::span(packet).first(kHeaderSize + 3), tag));
  EXPECT_TRUE(std::equal(tag.begin(), tag.end(), packet.begin() + kHeaderSize + 3));
}

TEST(OsrWire, EncodesPayloadBuiltInPlace) {
  PacketAuthenticator auth(testKey());
  const auto payload = patternPayload(100);
  std::vector<std::uint8_t> buffer(packetSize(payload.size()));
  std::copy(payload.begin(), payload.end(), buffer.begin() + kHeaderSize);
  const std::size_t written =
      encode(fullHeader(), std::span(buffer).subspan(kHeaderSize, 100), auth, buffer);
  ASSERT_EQ(written, buffer.size());
  const ParseResult result = parse(buffer, auth);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(std::vector(result.payload.begin(), result.payload.end()), payload);
}

TEST(OsrWire, EncodeRefusesSmallBuffersAndInvalidHeaders) {
  PacketAuthenticator auth(testKey());
  const auto payload = patternPayload(10);
  std::vector<std::uint8_t> out(kMaxPacket + 1);
  EXPECT_EQ(encode(fullHeader(), payload, auth, std::span(out).first(packetSize(10) - 1)), 0U);
  EXPECT_EQ(encode(fullHeader(), payload, auth, std::span(out).first(packetSize(10))),
            packetSize(10));
  const auto too_big = patternPayload(kMaxPayload + 1);
  EXPECT_EQ(encode(fullHeader(), too_big, auth, out), 0U);

  const auto rejects = [&](auto mutate) {
    Header header = fullHeader();
    mutate(header);
    return encode(header, payload, auth, out) == 0;
  };
  EXPECT_TRUE(rejects([](Header &h) { h.type = static_cast<PacketType>(0); }));
  EXPECT_TRUE(rejects([](Header &h) { h.type = static_cast<PacketType>(5); }));
  EXPECT_TRUE(rejects([](Header &h) { h.flags = 0x08; }));
  EXPECT_TRUE(rejects([](Header &h) { h.flags = 0x10; }));
  EXPECT_TRUE(rejects([](Header &h) { h.flags = kFlagExpress | kFlagFirst; }));
  EXPECT_TRUE(rejects([](Header &h) { h.type = PacketType::Probe; }));
  EXPECT_TRUE(rejects([](Header &h) { h.path_id = 16; }));
}

struct Tamper {
  std::string name;
  std::size_t at;
  std::uint8_t value;
  ParseStatus expected;
};

class OsrWireReject : public ::testing::TestWithParam<Tamper> {};

TEST_P(OsrWireReject, ReportsTheTamperedField) {
  PacketAuthenticator auth(testKey());
  const Tamper &tamper = GetParam();
  auto packet = encodeOrDie(fullHeader(), patternPayload(20), auth);
  packet[tamper.at] = tamper.value;
  retag(packet, auth);
  const ParseResult result = parse(packet, auth);
  EXPECT_EQ(result.status, tamper.expected)
      << "got '" << toString(result.status) << "' want '" << toString(tamper.expected) << "'";
  EXPECT_EQ(result.header, Header{}) << "a rejected packet must not expose parsed fields";
  EXPECT_TRUE(result.payload.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Fields, OsrWireReject,
    ::testing::Values(Tamper{"magic0", offset::kMagic, 0x00, ParseStatus::BadMagic},
                      Tamper{"magic50", offset::kMagic, 0x50, ParseStatus::BadMagic},
                      Tamper{"version0", offset::kVersion, 0, ParseStatus::BadVersion},
                      Tamper{"version2", offset::kVersion, 2, ParseStatus::BadVersion},
                      // Version 2 began "OS": its second byte reads as a version.
                      Tamper{"version2_magic", offset::kVersion, 0x53, ParseStatus::BadVersion},
                      Tamper{"version4", offset::kVersion, 4, ParseStatus::BadVersion},
                      Tamper{"type0", offset::kType, 0, ParseStatus::BadType},
                      Tamper{"type5", offset::kType, 5, ParseStatus::BadType},
                      Tamper{"type255", offset::kType, 255, ParseStatus::BadType},
                      Tamper{"flag8", offset::kPathFlags, 0xF8, ParseStatus::BadFlags},
                      Tamper{"express_alone", offset::kPathFlags, 0xF2, ParseStatus::BadFlags},
                      Tamper{"express_first", offset::kPathFlags, 0xF3, ParseStatus::BadFlags},
                      Tamper{"express_last", offset::kPathFlags, 0xF6, ParseStatus::BadFlags}),
    [](const auto &param_info) { return param_info.param.name; });

TEST(OsrWire, SegmentFlagsAreDataFlagsOnly) {
  PacketAuthenticator auth(testKey());
  Header header = fullHeader();
  for (const std::uint8_t flags :
       {std::uint8_t{0}, kFlagFirst, kFlagLast, std::uint8_t(kFlagFirst | kFlagLast),
        std::uint8_t(kFlagFirst | kFlagLast | kFlagExpress)}) {
    header.flags = flags;
    auto packet = encodeOrDie(header, patternPayload(40), auth);
    const ParseResult data = parse(packet, auth);
    ASSERT_TRUE(data.ok()) << toString(data.status);
    EXPECT_EQ(data.header, header);
    if (flags == 0) {
      continue;
    }
    for (const PacketType type :
         {PacketType::Probe, PacketType::ProbeReply, PacketType::Feedback}) {
      Header other = header;
      other.type = type;
      std::vector<std::uint8_t> out(packetSize(0));
      EXPECT_EQ(encode(other, {}, auth, out), 0U)
          << "flags " << int{flags} << " encoded on type " << static_cast<int>(type);
      packet[offset::kType] = static_cast<std::uint8_t>(type);
      retag(packet, auth);
      EXPECT_EQ(parse(packet, auth).status, ParseStatus::BadFlags)
          << "flags " << int{flags} << " parsed on type " << static_cast<int>(type);
    }
  }
}

TEST(OsrWire, FlippedBitAnywhereIsRejected) {
  PacketAuthenticator auth(testKey());
  const auto original = encodeOrDie(fullHeader(), patternPayload(40), auth);
  for (std::size_t bit = 0; bit < original.size() * 8; ++bit) {
    auto packet = original;
    packet[bit / 8] = static_cast<std::uint8_t>(packet[bit / 8] ^ (1U << (bit % 8)));
    const std::size_t byte = bit / 8;
    const ParseStatus expected = byte == offset::kMagic     ? ParseStatus::BadMagic
                                 : byte == offset::kVersion ? ParseStatus::BadVersion
                                                            : ParseStatus::BadTag;
    ASSERT_EQ(parse(packet, auth).status, expected) << "bit " << bit;
  }
}

TEST(OsrWire, AuthenticationPrecedesFieldChecks) {
  PacketAuthenticator auth(testKey());
  auto packet = encodeOrDie(fullHeader(), patternPayload(8), auth);
  packet[offset::kType] = 0;         // malformed ...
  packet[offset::kPathFlags] = 0x0F; // ... twice, and not re-tagged
  EXPECT_EQ(parse(packet, auth).status, ParseStatus::BadTag);
}

TEST(OsrWire, WrongKeyFailsAuthentication) {
  PacketAuthenticator member(testKey(0x42));
  PacketAuthenticator other_member(testKey(0x42));
  PacketAuthenticator stranger(testKey(0x43));
  const auto packet = encodeOrDie(fullHeader(), patternPayload(8), member);
  EXPECT_EQ(parse(packet, stranger).status, ParseStatus::BadTag);
  EXPECT_TRUE(parse(packet, other_member).ok()); // any holder of the key verifies
}

TEST(OsrWire, TheTagIsDeterministicAndNeedsNoNonce) {
  // Nothing a sender remembers goes into the tag: two senders with the key
  // (or one restored from a saved state) tag the same packet alike, and a
  // packet differing anywhere gets another tag.
  PacketAuthenticator a(testKey());
  PacketAuthenticator b(testKey());
  const auto first = encodeOrDie(fullHeader(), patternPayload(64), a);
  EXPECT_EQ(encodeOrDie(fullHeader(), patternPayload(64), a), first);
  EXPECT_EQ(encodeOrDie(fullHeader(), patternPayload(64), b), first);
  Header other = fullHeader();
  other.seq += 1;
  const auto second = encodeOrDie(other, patternPayload(64), a);
  EXPECT_FALSE(std::equal(first.end() - kTagSize, first.end(), second.end() - kTagSize));
}

TEST(OsrWire, TagIsGhashUnderK1ThenAesUnderK2) {
  // An independent implementation of the documented construction: libsodium's
  // AES-256-GCM (needs AES-NI and PCLMULQDQ) under K1 with the all-zero IV
  // gives GHASH_K1(packet) xor AES_K1(J0); AES-256 under K2 (OpenSSL's ECB,
  // one block) makes the tag. K1 and K2 come from crypto_kdf, context
  // "osrwire3", subkeys 1 and 2.
  if (crypto_aead_aes256gcm_is_available() == 0) {
    GTEST_SKIP() << "libsodium's AES-256-GCM needs AES-NI and PCLMULQDQ";
  }
  const OverlayKey key = testKey();
  PacketAuthenticator auth(key);
  const auto packet = encodeOrDie(fullHeader(), patternPayload(100), auth);
  std::array<std::uint8_t, 32> k1{};
  std::array<std::uint8_t, 32> k2{};
  ASSERT_EQ(crypto_kdf_derive_from_key(k1.data(), k1.size(), 1, "osrwire3", key.bytes().data()), 0);
  ASSERT_EQ(crypto_kdf_derive_from_key(k2.data(), k2.size(), 2, "osrwire3", key.bytes().data()), 0);
  std::array<std::uint8_t, kTagSize> ghash{};
  std::array<std::uint8_t, 1> no_ciphertext{}; // nothing is encrypted
  std::array<std::uint8_t, crypto_aead_aes256gcm_NPUBBYTES> zero_iv{};
  unsigned long long tag_size = 0;
  const std::size_t body = packet.size() - kTagSize;
  ASSERT_EQ(crypto_aead_aes256gcm_encrypt_detached(no_ciphertext.data(), ghash.data(), &tag_size,
                                                   no_ciphertext.data(), 0, packet.data(), body,
                                                   nullptr, zero_iv.data(), k1.data()),
            0);
  std::array<std::uint8_t, kTagSize> tag{};
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  ASSERT_NE(ctx, nullptr);
  int written = 0;
  const bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), nullptr, k2.data(), nullptr) == 1 &&
                  EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
                  EVP_EncryptUpdate(ctx, tag.data(), &written, ghash.data(), kTagSize) == 1;
  EVP_CIPHER_CTX_free(ctx);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(std::equal(tag.begin(), tag.end(), packet.end() - kTagSize));
}

TEST(OsrWire, TruncatedAndExtendedPacketsAreRejected) {
  PacketAuthenticator auth(testKey());
  const auto packet = encodeOrDie(fullHeader(), patternPayload(64), auth);
  for (std::size_t size = 0; size < packet.size(); ++size) {
    const ParseResult result = parse(std::span(packet).first(size), auth);
    if (size < kOverhead) {
      ASSERT_EQ(result.status, ParseStatus::TooShort) << "size " << size;
    } else {
      // The last 16 bytes of a truncated datagram are not its tag.
      ASSERT_EQ(result.status, ParseStatus::BadTag) << "size " << size;
    }
  }
  auto longer = packet;
  longer.push_back(0);
  EXPECT_EQ(parse(longer, auth).status, ParseStatus::BadTag);
}

TEST(OsrWire, OversizedDatagramIsTooLong) {
  PacketAuthenticator auth(testKey());
  std::vector<std::uint8_t> packet(kMaxPacket + 1, 0);
  EXPECT_EQ(parse(packet, auth).status, ParseStatus::TooLong);
  packet.resize(kMaxPacket);
  EXPECT_NE(parse(packet, auth).status, ParseStatus::TooLong);
}

TEST(OsrWire, EveryStatusHasADistinctName) {
  std::set<std::string_view> names;
  for (std::size_t s = 0; s < kParseStatusCount; ++s) {
    const auto name = toString(static_cast<ParseStatus>(s));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  std::set<std::string_view> feedback;
  for (int s = 0; s <= static_cast<int>(FeedbackStatus::BadPath); ++s) {
    EXPECT_TRUE(feedback.insert(toString(static_cast<FeedbackStatus>(s))).second);
  }
}

TEST(OsrWire, ProbeInfoRoundTripsAndRejectsWhatIsNotOne) {
  const ProbeInfo info{.back = Endpoint{.addr = 0x0A090001, .port = 7400},
                       .next_path_seq = 0xFFFE,
                       .next_seq = 0x80000001,
                       .min_rtt_us = 12345};
  std::array<std::uint8_t, kProbeInfoSize> bytes{};
  encodeProbeInfo(info, bytes);
  EXPECT_EQ(parseProbeInfo(bytes), info);
  EXPECT_EQ(bytes[0], 0x0A);
  EXPECT_EQ(bytes[5], 0xE8);
  EXPECT_FALSE(parseProbeInfo(std::span(bytes).first(kProbeInfoSize - 1)));
  std::array<std::uint8_t, kProbeInfoSize + 1> longer{};
  EXPECT_FALSE(parseProbeInfo(longer));
  encodeProbeInfo(ProbeInfo{.back = Endpoint{.addr = 0x0A090001, .port = 0}}, bytes);
  EXPECT_FALSE(parseProbeInfo(bytes)) << "a reply to port 0";
  encodeProbeInfo(ProbeInfo{.back = Endpoint{.addr = 0, .port = 7400}}, bytes);
  EXPECT_FALSE(parseProbeInfo(bytes)) << "a reply to 0.0.0.0";
}

Feedback fullFeedback(std::uint8_t count) {
  Feedback f;
  f.echo_us = 0xFFFFFFF0;
  f.epoch = 0x12345678;
  f.count = count;
  for (std::uint8_t i = 0; i < count; ++i) {
    f.paths[i] = PathFeedback{.path = static_cast<PathId>(15 - i),
                              .path_seq = static_cast<std::uint16_t>(0xFFF0 + i),
                              .bytes = 0xFFFFFF00U + i,
                              .parts = 1000U + i,
                              .lost = i,
                              .queue_min_us = i == 0 ? PathFeedback::kUnknownQueue : 500U * i,
                              .queue_last_us = 700U * i,
                              .base_us = 30000U * i};
  }
  return f;
}

TEST(OsrWire, FeedbackRoundTripsForEveryPathCount) {
  for (std::uint8_t count = 0; count <= kMaxPaths; ++count) {
    const Feedback f = fullFeedback(count);
    std::array<std::uint8_t, kMaxFeedbackSize> bytes{};
    const std::size_t size = encodeFeedback(f, bytes);
    ASSERT_EQ(size, kFeedbackHeaderSize + count * kPathFeedbackSize);
    Feedback parsed;
    ASSERT_EQ(parseFeedback(std::span(bytes).first(size), parsed), FeedbackStatus::Ok);
    EXPECT_EQ(parsed, f);
  }
  std::array<std::uint8_t, kMaxFeedbackSize> small{};
  EXPECT_EQ(encodeFeedback(fullFeedback(3), std::span(small).first(kFeedbackHeaderSize)), 0U);
}

TEST(OsrWire, FeedbackRejectsEachMalformation) {
  std::array<std::uint8_t, kMaxFeedbackSize + 1> bytes{};
  const std::size_t size = encodeFeedback(fullFeedback(3), bytes);
  const auto parseWith = [&](std::size_t at, std::uint8_t value, std::size_t length) {
    auto copy = bytes;
    copy[at] = value;
    Feedback out;
    out.count = 99; // untouched unless Ok
    const FeedbackStatus status = parseFeedback(std::span(copy).first(length), out);
    EXPECT_TRUE(status == FeedbackStatus::Ok || out.count == 99);
    return status;
  };
  EXPECT_EQ(parseWith(0, bytes[0], size), FeedbackStatus::Ok);
  EXPECT_EQ(parseWith(0, bytes[0], kFeedbackHeaderSize - 1), FeedbackStatus::BadSize);
  EXPECT_EQ(parseWith(0, bytes[0], size - 1), FeedbackStatus::BadSize);
  EXPECT_EQ(parseWith(0, bytes[0], size + 1), FeedbackStatus::BadSize);
  EXPECT_EQ(parseWith(8, 17, size), FeedbackStatus::BadCount);
  EXPECT_EQ(parseWith(8, 4, size), FeedbackStatus::BadSize);
  EXPECT_EQ(parseWith(9, 1, size), FeedbackStatus::BadReserved);
  EXPECT_EQ(parseWith(11, 0x80, size), FeedbackStatus::BadReserved);
  EXPECT_EQ(parseWith(kFeedbackHeaderSize + 1, 1, size), FeedbackStatus::BadReserved);
  EXPECT_EQ(parseWith(kFeedbackHeaderSize, 16, size), FeedbackStatus::BadPath);
  // The second entry naming the first one's path.
  EXPECT_EQ(parseWith(kFeedbackHeaderSize + kPathFeedbackSize, 15, size), FeedbackStatus::BadPath);
}

TEST(OsrOverlayKey, HexRoundTripAndValidation) {
  const OverlayKey key = OverlayKey::generate();
  const std::string hex = key.toHex();
  ASSERT_EQ(hex.size(), 64U);
  const auto loaded = OverlayKey::fromHex(hex);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_TRUE(std::equal(loaded->bytes().begin(), loaded->bytes().end(), key.bytes().begin()));
  EXPECT_TRUE(OverlayKey::fromHex("  " + hex + "\n").has_value());

  std::string upper = hex;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  EXPECT_TRUE(OverlayKey::fromHex(upper).has_value());

  EXPECT_FALSE(OverlayKey::fromHex(hex.substr(1)).has_value());
  EXPECT_FALSE(OverlayKey::fromHex(hex + "0").has_value());
  EXPECT_FALSE(OverlayKey::fromHex("").has_value());
  std::string dirty = hex;
  dirty[10] = 'g';
  EXPECT_FALSE(OverlayKey::fromHex(dirty).has_value());
  dirty = hex;
  dirty[10] = ' ';
  EXPECT_FALSE(OverlayKey::fromHex(dirty).has_value());
}

TEST(OsrOverlayKey, GeneratedKeysDiffer) {
  const OverlayKey a = OverlayKey::generate();
  const OverlayKey b = OverlayKey::generate();
  EXPECT_NE(a.toHex(), b.toHex());
}

} // namespace
} // namespace nvbox::osr::wire

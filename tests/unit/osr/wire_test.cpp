#include "osr/wire.hpp"

#include <gtest/gtest.h>
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
                .flags = 0,
                .flow_id = 0xA1B2C3D4,
                .seq = 0xFFFFFFFF,
                .segment = 0x01020304,
                .part_index = 15,
                .k = 16,
                .path_id = 15,
                .send_ns = 0x0123456789ABCDEFULL,
                .dst = Endpoint{.addr = 0x0A090002, .port = 7400}};
}

std::vector<std::uint8_t> patternPayload(std::size_t size) {
  std::vector<std::uint8_t> payload(size);
  for (std::size_t i = 0; i < size; ++i) {
    payload[i] = static_cast<std::uint8_t>(i * 7 + 3);
  }
  return payload;
}

std::span<const std::uint8_t, PacketAuthenticator::kNonceSize>
nonceOf(std::span<const std::uint8_t> packet) {
  return packet.subspan(offset::kNonce).first<PacketAuthenticator::kNonceSize>();
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
  ASSERT_TRUE(auth.computeTag(std::span(packet).first(body), nonceOf(packet),
                              std::span(packet).subspan(body).first<kTagSize>()));
}

TEST(OsrWire, RoundTripsEveryFieldForEveryTypeAndSize) {
  PacketAuthenticator auth(testKey());
  for (const PacketType type : {PacketType::Data, PacketType::Probe, PacketType::ProbeReply}) {
    for (const std::size_t size :
         {std::size_t{0}, std::size_t{1}, std::size_t{1400}, kMaxPayload}) {
      Header header = fullHeader();
      header.type = type;
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
  const Header header{}; // all zero, k = 1
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
      0x4F, 0x53,                                     // magic
      0x02,                                           // version
      0x01,                                           // type DATA
      0x00,                                           // flags
      0x0F,                                           // part index
      0x10,                                           // k
      0x0F,                                           // path id
      0xA1, 0xB2, 0xC3, 0xD4,                         // flow id
      0xFF, 0xFF, 0xFF, 0xFF,                         // seq
      0x01, 0x02, 0x03, 0x04,                         // segment
      0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, // send ns
      0x0A, 0x09, 0x00, 0x02,                         // destination 10.9.0.2
      0x1C, 0xE8,                                     // destination port 7400
      0x00, 0x03,                                     // payload length
  };
  ASSERT_EQ(packet.size(), kHeaderSize + payload.size() + kTagSize);
  ASSERT_EQ(offset::kNonce, expected_header.size());
  EXPECT_EQ(std::vector(packet.begin(), packet.begin() + offset::kNonce), expected_header);
  EXPECT_EQ(packet[kHeaderSize], 0xAA);
  EXPECT_EQ(packet[kHeaderSize + 2], 0xCC);
  std::array<std::uint8_t, kTagSize> tag{};
  ASSERT_TRUE(auth.computeTag(std::span(packet).first(kHeaderSize + 3), nonceOf(packet), tag));
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
  EXPECT_TRUE(rejects([](Header &h) { h.type = static_cast<PacketType>(4); }));
  EXPECT_TRUE(rejects([](Header &h) { h.flags = 1; }));
  EXPECT_TRUE(rejects([](Header &h) { h.k = 0; }));
  EXPECT_TRUE(rejects([](Header &h) { h.k = 17; }));
  EXPECT_TRUE(rejects([](Header &h) { h.part_index = h.k; }));
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
    ::testing::Values(Tamper{"magic_hi", offset::kMagic, 0x00, ParseStatus::BadMagic},
                      Tamper{"magic_lo", offset::kMagic + 1, 0x54, ParseStatus::BadMagic},
                      Tamper{"version0", offset::kVersion, 0, ParseStatus::BadVersion},
                      Tamper{"version1", offset::kVersion, 1, ParseStatus::BadVersion},
                      Tamper{"version3", offset::kVersion, 3, ParseStatus::BadVersion},
                      Tamper{"type0", offset::kType, 0, ParseStatus::BadType},
                      Tamper{"type4", offset::kType, 4, ParseStatus::BadType},
                      Tamper{"type255", offset::kType, 255, ParseStatus::BadType},
                      Tamper{"flags1", offset::kFlags, 0x01, ParseStatus::BadFlags},
                      Tamper{"flags80", offset::kFlags, 0x80, ParseStatus::BadFlags},
                      Tamper{"k0", offset::kK, 0, ParseStatus::BadK},
                      Tamper{"k17", offset::kK, 17, ParseStatus::BadK},
                      Tamper{"k255", offset::kK, 255, ParseStatus::BadK},
                      Tamper{"part_eq_k", offset::kPartIndex, 16, ParseStatus::BadPartIndex},
                      Tamper{"part255", offset::kPartIndex, 255, ParseStatus::BadPartIndex},
                      Tamper{"path16", offset::kPathId, 16, ParseStatus::BadPathId},
                      Tamper{"path255", offset::kPathId, 255, ParseStatus::BadPathId},
                      Tamper{"length_plus", offset::kLength + 1, 21, ParseStatus::LengthMismatch},
                      Tamper{"length_minus", offset::kLength + 1, 19, ParseStatus::LengthMismatch},
                      Tamper{"length_hi", offset::kLength, 1, ParseStatus::LengthMismatch}),
    [](const auto &param_info) { return param_info.param.name; });

TEST(OsrWire, PartIndexMustBeBelowKEvenForSmallK) {
  PacketAuthenticator auth(testKey());
  Header header = fullHeader();
  header.k = 3;
  header.part_index = 2;
  auto packet = encodeOrDie(header, {}, auth);
  ASSERT_TRUE(parse(packet, auth).ok());
  packet[offset::kPartIndex] = 3;
  retag(packet, auth);
  EXPECT_EQ(parse(packet, auth).status, ParseStatus::BadPartIndex);
}

TEST(OsrWire, ExpressIsADataFlagOnly) {
  PacketAuthenticator auth(testKey());
  Header header = fullHeader();
  header.flags = kFlagExpress;
  const auto payload = patternPayload(40);
  auto packet = encodeOrDie(header, payload, auth);
  const ParseResult data = parse(packet, auth);
  ASSERT_TRUE(data.ok()) << toString(data.status);
  EXPECT_EQ(data.header, header);

  std::vector<std::uint8_t> out(packetSize(0));
  for (const PacketType type : {PacketType::Probe, PacketType::ProbeReply}) {
    header.type = type;
    EXPECT_EQ(encode(header, {}, auth, out), 0U)
        << "EXPRESS encoded on type " << static_cast<int>(type);
    packet[offset::kType] = static_cast<std::uint8_t>(type);
    retag(packet, auth);
    EXPECT_EQ(parse(packet, auth).status, ParseStatus::BadFlags)
        << "EXPRESS parsed on type " << static_cast<int>(type);
  }
}

TEST(OsrWire, FlippedBitAnywhereIsRejected) {
  PacketAuthenticator auth(testKey());
  const auto original = encodeOrDie(fullHeader(), patternPayload(40), auth);
  for (std::size_t bit = 0; bit < original.size() * 8; ++bit) {
    auto packet = original;
    packet[bit / 8] = static_cast<std::uint8_t>(packet[bit / 8] ^ (1U << (bit % 8)));
    const std::size_t byte = bit / 8;
    const ParseStatus expected = byte < 2                   ? ParseStatus::BadMagic
                                 : byte == offset::kVersion ? ParseStatus::BadVersion
                                                            : ParseStatus::BadTag;
    ASSERT_EQ(parse(packet, auth).status, expected) << "bit " << bit;
  }
}

TEST(OsrWire, AuthenticationPrecedesFieldChecks) {
  PacketAuthenticator auth(testKey());
  auto packet = encodeOrDie(fullHeader(), patternPayload(8), auth);
  packet[offset::kK] = 0;         // malformed ...
  packet[offset::kLength] = 0xFF; // ... twice, and not re-tagged
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

// The nonce as a number: the first 4 bytes and the last 8, big-endian.
std::pair<std::uint32_t, std::uint64_t> nonceValue(std::span<const std::uint8_t> packet) {
  std::uint32_t hi = 0;
  std::uint64_t lo = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    hi = (hi << 8) | packet[offset::kNonce + i];
  }
  for (std::size_t i = 4; i < PacketAuthenticator::kNonceSize; ++i) {
    lo = (lo << 8) | packet[offset::kNonce + i];
  }
  return {hi, lo};
}

TEST(OsrWire, EachPacketTakesTheSendersNextNonce) {
  PacketAuthenticator auth(testKey());
  const auto first = encodeOrDie(fullHeader(), patternPayload(8), auth);
  const auto second = encodeOrDie(fullHeader(), patternPayload(8), auth);
  ASSERT_TRUE(parse(first, auth).ok());
  ASSERT_TRUE(parse(second, auth).ok());
  const auto [hi1, lo1] = nonceValue(first);
  const auto [hi2, lo2] = nonceValue(second);
  EXPECT_EQ(lo2, lo1 + 1);
  EXPECT_EQ(hi2, lo1 == UINT64_MAX ? hi1 + 1 : hi1);
  // Same header and payload, different nonce: a different tag.
  EXPECT_FALSE(std::equal(first.end() - kTagSize, first.end(), second.end() - kTagSize));
}

TEST(OsrWire, SendersStartTheirNoncesAtRandom) {
  PacketAuthenticator a(testKey());
  PacketAuthenticator b(testKey());
  const auto from_a = encodeOrDie(fullHeader(), {}, a);
  const auto from_b = encodeOrDie(fullHeader(), {}, b);
  EXPECT_NE(nonceValue(from_a), nonceValue(from_b));
}

TEST(OsrWire, TagIsAes256GcmUnderTheDerivedKey) {
  // An independent implementation of the documented scheme: libsodium's
  // AES-256-GCM (needs AES-NI and PCLMULQDQ) with the key derived by
  // crypto_kdf, tagging the header and payload as additional data.
  if (crypto_aead_aes256gcm_is_available() == 0) {
    GTEST_SKIP() << "libsodium's AES-256-GCM needs AES-NI and PCLMULQDQ";
  }
  const OverlayKey key = testKey();
  PacketAuthenticator auth(key);
  const auto packet = encodeOrDie(fullHeader(), patternPayload(100), auth);
  std::array<std::uint8_t, crypto_aead_aes256gcm_KEYBYTES> aes_key{};
  ASSERT_EQ(
      crypto_kdf_derive_from_key(aes_key.data(), aes_key.size(), 1, "osrwire2", key.bytes().data()),
      0);
  std::array<std::uint8_t, kTagSize> tag{};
  std::array<std::uint8_t, 1> no_ciphertext{}; // nothing is encrypted
  unsigned long long tag_size = 0;
  const std::size_t body = packet.size() - kTagSize;
  ASSERT_EQ(crypto_aead_aes256gcm_encrypt_detached(
                no_ciphertext.data(), tag.data(), &tag_size, no_ciphertext.data(), 0, packet.data(),
                body, nullptr, packet.data() + offset::kNonce, aes_key.data()),
            0);
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

TEST(OsrWire, TrailingGarbageWithValidTagIsALengthMismatch) {
  PacketAuthenticator auth(testKey());
  auto packet = encodeOrDie(fullHeader(), patternPayload(10), auth);
  packet.insert(packet.end() - kTagSize, std::uint8_t{0x99}); // one byte the length does not cover
  retag(packet, auth);
  EXPECT_EQ(parse(packet, auth).status, ParseStatus::LengthMismatch);
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
  for (int s = 0; s <= static_cast<int>(ParseStatus::LengthMismatch); ++s) {
    const auto name = toString(static_cast<ParseStatus>(s));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
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

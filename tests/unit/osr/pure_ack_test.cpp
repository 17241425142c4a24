// isPureTcpAck: which application packets the ingress may send EXPRESS.
// Every packet here is built field by field; each refused case differs from
// the accepted pure ACK in one respect only.
#include "osr/pure_ack.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nvbox::osr {
namespace {

constexpr std::uint8_t kAck = 0x10;

struct Segment {
  std::size_t ipOptions = 0;  // bytes, a multiple of 4
  std::size_t tcpOptions = 0; // bytes, a multiple of 4
  std::size_t payload = 0;
  std::uint8_t flags = kAck;
  std::uint8_t protocol = 6;
  std::uint16_t fragment = 0x4000; // DF, offset 0
};

std::vector<std::uint8_t> build(const Segment &s) {
  const std::size_t ip = 20 + s.ipOptions;
  const std::size_t tcp = 20 + s.tcpOptions;
  std::vector<std::uint8_t> p(ip + tcp + s.payload, 0);
  p[0] = static_cast<std::uint8_t>(0x40 | (ip / 4));
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  p[6] = static_cast<std::uint8_t>(s.fragment >> 8);
  p[7] = static_cast<std::uint8_t>(s.fragment);
  p[8] = 64;
  p[9] = s.protocol;
  p[12] = 10, p[15] = 1, p[16] = 10, p[19] = 2;
  p[ip + 12] = static_cast<std::uint8_t>((tcp / 4) << 4);
  p[ip + 13] = s.flags;
  return p;
}

TEST(OsrPureAck, AcceptsSegmentsThatOnlyAcknowledge) {
  EXPECT_TRUE(isPureTcpAck(build({})));
  EXPECT_TRUE(isPureTcpAck(build({.tcpOptions = 12}))) << "timestamps";
  EXPECT_TRUE(isPureTcpAck(build({.tcpOptions = 40}))) << "SACK blocks";
  EXPECT_TRUE(isPureTcpAck(build({.ipOptions = 4})));
  EXPECT_TRUE(isPureTcpAck(build({.flags = kAck | 0x08}))) << "PSH";
  EXPECT_TRUE(isPureTcpAck(build({.flags = kAck | 0x40}))) << "ECE";
  EXPECT_TRUE(isPureTcpAck(build({.fragment = 0}))) << "DF clear";
}

TEST(OsrPureAck, RefusesEverythingElse) {
  struct Case {
    std::string name;
    std::vector<std::uint8_t> packet;
  };
  const auto truncate = [](std::vector<std::uint8_t> p, std::size_t n) {
    p.resize(n);
    return p;
  };
  auto ipv6 = build({});
  ipv6[0] = 0x65;
  auto shortIhl = build({});
  shortIhl[0] = 0x44;
  auto shortDoff = build({});
  shortDoff[20 + 12] = 0x40;
  auto longDoff = build({});
  longDoff[20 + 12] = 0x60; // claims 24 bytes, has 20
  auto trailing = build({});
  trailing.push_back(0); // total length says one byte less
  const std::vector<Case> cases{
      {"one byte of data", build({.payload = 1})},
      {"SYN+ACK", build({.flags = kAck | 0x02})},
      {"FIN+ACK", build({.flags = kAck | 0x01})},
      {"RST+ACK", build({.flags = kAck | 0x04})},
      {"no ACK", build({.flags = 0x08})},
      {"UDP", build({.protocol = 17})},
      {"more fragments", build({.fragment = 0x2000})},
      {"fragment offset", build({.fragment = 0x0001})},
      {"IPv6", ipv6},
      {"IHL below 5", shortIhl},
      {"data offset below 5", shortDoff},
      {"data offset past the end", longDoff},
      {"bytes after the total length", trailing},
      {"cut in the TCP header", truncate(build({}), 39)},
      {"cut in the IP header", truncate(build({}), 19)},
      {"empty", {}},
  };
  for (const auto &c : cases) {
    EXPECT_FALSE(isPureTcpAck(c.packet)) << c.name;
  }
}

} // namespace
} // namespace nvbox::osr

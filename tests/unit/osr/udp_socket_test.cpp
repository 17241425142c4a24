// UdpSocket over the loopback device: batches, UDP GSO on send and UDP GRO on
// receive. On loopback a GSO message stays one skb up to the receiving socket,
// which gets it whole when it asked for GRO and cut when it did not — so
// both receive paths are exercised deterministically, by the real kernel.
#include "udp_socket.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace nvbox::osr {
namespace {

using Bytes = std::vector<std::uint8_t>;

Endpoint loopback() {
  return Endpoint{0x7F000001, 0};
}

// A datagram whose bytes say which one it is.
Bytes datagram(std::uint32_t id, std::size_t size) {
  Bytes b(size);
  for (std::size_t i = 0; i < size; ++i) {
    b[i] = static_cast<std::uint8_t>((id * 131 + i) & 0xFF);
  }
  std::memcpy(b.data(), &id, std::min(size, sizeof id));
  return b;
}

struct Received {
  std::vector<Bytes> datagrams;
  std::vector<Endpoint> from;
};

// Receives until `count` datagrams arrived or a second passed.
Received receiveAll(UdpSocket &socket, std::size_t count) {
  auto batch = std::make_unique<PacketBatch>();
  Received r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (r.datagrams.size() < count && std::chrono::steady_clock::now() < deadline) {
    const std::size_t n = socket.receive(*batch);
    if (n == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (std::size_t i = 0; i < n; ++i) {
      const auto d = batch->data(i);
      r.datagrams.emplace_back(d.begin(), d.end());
      r.from.push_back(batch->from(i));
    }
  }
  return r;
}

void queue(PacketBatch &batch, const Bytes &bytes, const Endpoint &to) {
  ASSERT_TRUE(batch.push(bytes, to));
}

TEST(UdpSocket, GsoRunArrivesWholeAtAGroSocketAndIsCutBack) {
  UdpSocket tx(loopback(), 1 << 20, true);
  UdpSocket rx(loopback(), 1 << 20, true);
  if (!tx.gso() || !rx.gro()) {
    GTEST_SKIP() << "this kernel has no UDP GSO/GRO";
  }
  auto batch = std::make_unique<PacketBatch>();
  std::vector<Bytes> sent;
  for (std::uint32_t i = 0; i < 40; ++i) {
    sent.push_back(datagram(i, 1000));
  }
  sent.push_back(datagram(40, 300)); // the last of a run may be shorter
  for (const auto &d : sent) {
    queue(*batch, d, rx.local());
  }
  EXPECT_EQ(tx.send(*batch), 0U);
  EXPECT_EQ(batch->size(), 0U);
  EXPECT_EQ(tx.counters().gsoMessages, 1U);
  EXPECT_EQ(tx.counters().gsoDatagrams, 41U);

  const Received got = receiveAll(rx, sent.size());
  EXPECT_EQ(got.datagrams, sent);
  EXPECT_EQ(rx.counters().groDatagrams, 41U);
  for (const auto &from : got.from) {
    EXPECT_EQ(from, tx.local());
  }
}

TEST(UdpSocket, GsoRunIsCutByTheKernelForASocketWithoutGro) {
  UdpSocket tx(loopback(), 1 << 20, true);
  UdpSocket rx(loopback(), 1 << 20, false);
  if (!tx.gso()) {
    GTEST_SKIP() << "this kernel has no UDP GSO";
  }
  EXPECT_FALSE(rx.gso());
  EXPECT_FALSE(rx.gro());
  auto batch = std::make_unique<PacketBatch>();
  std::vector<Bytes> sent;
  for (std::uint32_t i = 0; i < 64; ++i) {
    sent.push_back(datagram(i, 64));
    queue(*batch, sent.back(), rx.local());
  }
  EXPECT_TRUE(batch->full());
  EXPECT_EQ(tx.send(*batch), 0U);
  EXPECT_EQ(tx.counters().gsoMessages, 1U);
  const Received got = receiveAll(rx, sent.size());
  EXPECT_EQ(got.datagrams, sent);
  EXPECT_EQ(rx.counters().groDatagrams, 0U);
}

TEST(UdpSocket, DestinationsAreGroupedAndOrderIsKeptWithinEach) {
  UdpSocket tx(loopback(), 1 << 20, true);
  UdpSocket a(loopback(), 1 << 20, false);
  UdpSocket b(loopback(), 1 << 20, false);
  if (!tx.gso()) {
    GTEST_SKIP() << "this kernel has no UDP GSO";
  }
  auto batch = std::make_unique<PacketBatch>();
  std::vector<Bytes> toA;
  std::vector<Bytes> toB;
  // Striped the way an ingress sends: alternating paths.
  for (std::uint32_t i = 0; i < 30; ++i) {
    toA.push_back(datagram(2 * i, 1200));
    queue(*batch, toA.back(), a.local());
    toB.push_back(datagram(2 * i + 1, 1200));
    queue(*batch, toB.back(), b.local());
  }
  EXPECT_EQ(tx.send(*batch), 0U);
  EXPECT_EQ(tx.counters().gsoMessages, 2U);
  EXPECT_EQ(tx.counters().gsoDatagrams, 60U);
  EXPECT_EQ(receiveAll(a, toA.size()).datagrams, toA);
  EXPECT_EQ(receiveAll(b, toB.size()).datagrams, toB);
}

TEST(UdpSocket, ARunEndsAtAShorterOrLongerDatagram) {
  UdpSocket tx(loopback(), 1 << 20, true);
  UdpSocket rx(loopback(), 1 << 20, true);
  if (!tx.gso()) {
    GTEST_SKIP() << "this kernel has no UDP GSO";
  }
  auto batch = std::make_unique<PacketBatch>();
  // Runs: [800 800 100] [800 1400] is not a run (longer), so [800] [1400 1400].
  const std::vector<std::size_t> sizes = {800, 800, 100, 800, 1400, 1400};
  std::vector<Bytes> sent;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(datagram(static_cast<std::uint32_t>(i), sizes[i]));
    queue(*batch, sent.back(), rx.local());
  }
  EXPECT_EQ(tx.send(*batch), 0U);
  EXPECT_EQ(tx.counters().gsoMessages, 2U);
  EXPECT_EQ(tx.counters().gsoDatagrams, 5U);
  EXPECT_EQ(receiveAll(rx, sent.size()).datagrams, sent);
}

TEST(UdpSocket, WithoutOffloadEveryDatagramIsItsOwnMessage) {
  UdpSocket tx(loopback(), 1 << 20, false);
  UdpSocket rx(loopback(), 1 << 20, false);
  auto batch = std::make_unique<PacketBatch>();
  std::vector<Bytes> sent;
  for (std::uint32_t i = 0; i < 20; ++i) {
    sent.push_back(datagram(i, 500));
    queue(*batch, sent.back(), rx.local());
  }
  EXPECT_EQ(tx.send(*batch), 0U);
  EXPECT_EQ(tx.counters().gsoMessages, 0U);
  EXPECT_EQ(receiveAll(rx, sent.size()).datagrams, sent);
}

TEST(UdpSocket, ADatagramLargerThanASlotIsMarkedEmptyUnlessGroBuffersHoldIt) {
  UdpSocket tx(loopback(), 1 << 20, false);
  UdpSocket small(loopback(), 1 << 20, false);
  UdpSocket large(loopback(), 1 << 20, true);
  const Bytes big = datagram(7, 3000); // > PacketBatch::kBufferSize
  for (UdpSocket *rx : {&small, &large}) {
    const sockaddr_in to = rx->local().toSockaddr();
    ASSERT_EQ(::sendto(tx.fd(), big.data(), big.size(), 0, reinterpret_cast<const sockaddr *>(&to),
                       sizeof to),
              static_cast<ssize_t>(big.size()));
  }
  // Cut: length 0, which every parser rejects, never a partial packet.
  const Received cut = receiveAll(small, 1);
  ASSERT_EQ(cut.datagrams.size(), 1U);
  EXPECT_TRUE(cut.datagrams[0].empty());
  if (large.gro()) {
    const Received whole = receiveAll(large, 1);
    ASSERT_EQ(whole.datagrams.size(), 1U);
    EXPECT_EQ(whole.datagrams[0], big);
  }
}

TEST(UdpSocket, AnUnreachableDestinationDropsOnlyItsOwnRun) {
  UdpSocket tx(loopback(), 1 << 20, true);
  UdpSocket rx(loopback(), 1 << 20, false);
  auto batch = std::make_unique<PacketBatch>();
  // From a socket bound to 127.0.0.1 nothing leaves the host: the kernel
  // refuses every message to 240.0.0.1, whatever the routes.
  const Endpoint nowhere{0xF0000001, 9};
  std::vector<Bytes> sent;
  for (std::uint32_t i = 0; i < 10; ++i) {
    queue(*batch, datagram(100 + i, 600), nowhere);
    sent.push_back(datagram(i, 600));
    queue(*batch, sent.back(), rx.local());
  }
  EXPECT_EQ(tx.send(*batch), 10U);
  EXPECT_EQ(receiveAll(rx, sent.size()).datagrams, sent);
}

} // namespace
} // namespace nvbox::osr

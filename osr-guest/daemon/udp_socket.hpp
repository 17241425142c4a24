// UdpSocket — the OSR tunnel socket, moving datagrams in batches.
//
// What it does: one non-blocking UDP/IPv4 socket; receive() fills a
// PacketBatch with what is waiting in one recvmmsg(2), send() drains a
// PacketBatch with sendmmsg(2). Buffers live in the batch, allocated once, so
// the data path allocates nothing and makes one system call per batch.
//
// With offload (where the kernel has it; Linux ≥ 4.18 for GSO, ≥ 5.0 for GRO):
//  - send() uses UDP GSO (UDP_SEGMENT): the datagrams of a batch are grouped
//    by destination (order kept within a destination; different destinations
//    are different paths, so their relative order does not matter), and each
//    run of equal-sized datagrams to one destination (the last may be
//    shorter) leaves as one message that the kernel cuts — or the NIC, or
//    nobody when the receiver coalesces again. The datagrams on the wire are
//    exactly those queued.
//  - receive() enables UDP GRO: the kernel may hand over one large datagram
//    made of several equal-sized ones from one sender, with their size in a
//    UDP_GRO control message; the batch cuts it back, so callers still see
//    one view per datagram as it was sent.
// A device that refuses GSO (EIO) turns it off for the socket and the batch is
// sent datagram by datagram; nothing is lost to the switch.
//
// Parameters: the local endpoint; socket buffer sizes (4 MiB by default, so
// bursts from k paths are not dropped at the socket); offload.
// Counters: gsoMessages/gsoDatagrams (sent as GSO messages), groDatagrams
// (received coalesced); the stages count what they do with the packets.
// Threading: one thread per socket; a batch belongs to one thread.
#pragma once

#include "osr/endpoint.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <netinet/in.h>
#include <span>
#include <sys/socket.h>

namespace nvbox::osr {

class PacketBatch {
public:
  static constexpr std::size_t kBatch = 64;
  static constexpr std::size_t kBufferSize = 2048;
  // Bounds of one GSO/GRO message: the kernel's UDP_MAX_SEGMENTS and
  // UDP_GRO_CNT_MAX are both at least 64, and a UDP datagram is < 64 KiB.
  static constexpr std::size_t kMaxSegments = 64;
  static constexpr std::size_t kMaxMessage = 65536;

  PacketBatch();
  PacketBatch(const PacketBatch &) = delete;
  PacketBatch &operator=(const PacketBatch &) = delete;

  // Datagrams queued (to send) or received.
  [[nodiscard]] std::size_t size() const { return count_; }
  [[nodiscard]] bool full() const { return count_ == kBatch; }
  void clear() { count_ = 0; }

  // Datagram i, as it was sent.
  [[nodiscard]] std::span<const std::uint8_t> data(std::size_t i) const {
    return {views_[i].bytes, views_[i].length};
  }
  [[nodiscard]] Endpoint from(std::size_t i) const {
    return Endpoint::fromSockaddr(addrs_[views_[i].message]);
  }

  // The next free slot's buffer to build a datagram in; commit() queues it.
  [[nodiscard]] std::span<std::uint8_t> slot() { return buffers_[count_]; }
  void commit(std::size_t length, const Endpoint &to);
  // Queues a copy of `bytes` (a datagram being forwarded unchanged).
  bool push(std::span<const std::uint8_t> bytes, const Endpoint &to);

private:
  friend class UdpSocket;

  struct View {
    const std::uint8_t *bytes = nullptr;
    std::uint32_t length = 0;
    std::uint32_t message = 0; // index into addrs_
  };
  // Room for one control message of an int (UDP_GRO) or a u16 (UDP_SEGMENT).
  struct alignas(cmsghdr) Control {
    std::array<std::uint8_t, CMSG_SPACE(sizeof(int))> bytes;
  };

  // Receiving: n messages into the small slots, or into the GRO arena.
  void prepareReceive(bool gro);
  // Cuts received message m (of `length` bytes, datagrams of `segment` bytes,
  // 0 when not coalesced) into views.
  void addReceived(std::size_t m, std::uint8_t *base, std::size_t length, std::size_t segment);

  std::size_t count_ = 0;
  std::array<std::array<std::uint8_t, kBufferSize>, kBatch> buffers_{};
  // Made on the first GRO receive (64 × 64 KiB of address space; only the
  // pages datagrams land on are ever touched).
  std::unique_ptr<std::uint8_t[]> groArena_;
  std::array<View, kBatch * kMaxSegments> views_{};
  std::array<sockaddr_in, kBatch> addrs_{};
  std::array<iovec, kBatch> iov_{};
  std::array<mmsghdr, kBatch> msgs_{};
  std::array<Control, kBatch> control_{};
  std::array<std::uint8_t, kBatch> order_{}; // send order, grouped by destination
};

class UdpSocket {
public:
  struct Counters {
    std::uint64_t gsoMessages = 0;  // messages sent with UDP_SEGMENT
    std::uint64_t gsoDatagrams = 0; // datagrams in them
    std::uint64_t groDatagrams = 0; // datagrams received coalesced
  };

  // Binds to `local`; throws std::runtime_error naming the endpoint.
  explicit UdpSocket(const Endpoint &local, int bufferBytes = 4 << 20, bool offload = false);
  ~UdpSocket();
  UdpSocket(const UdpSocket &) = delete;
  UdpSocket &operator=(const UdpSocket &) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] Endpoint local() const;
  [[nodiscard]] bool gso() const { return gso_; }
  [[nodiscard]] bool gro() const { return gro_; }
  [[nodiscard]] const Counters &counters() const { return counters_; }

  // Replaces the batch's contents with what is waiting (0 if nothing).
  std::size_t receive(PacketBatch &batch);
  // Sends everything queued and clears the batch. Datagrams the kernel
  // refuses (buffer full, unreachable) are dropped and counted in the return.
  std::size_t send(PacketBatch &batch);

private:
  // Sends msgs_[0, messages), each one datagram or a GSO run; returns the
  // datagrams dropped.
  std::size_t sendMessages(PacketBatch &batch, std::size_t messages);
  // Builds one message per GSO run (grouped by destination); returns how many.
  std::size_t buildGsoMessages(PacketBatch &batch) const;
  // A GSO message the device refused, sent again one datagram at a time.
  std::size_t sendOneByOne(const msghdr &message);

  int fd_ = -1;
  bool gso_ = false;
  bool gro_ = false;
  Counters counters_;
};

} // namespace nvbox::osr

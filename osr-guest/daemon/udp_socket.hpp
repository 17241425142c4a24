// UdpSocket — the OSR tunnel socket, moving datagrams in batches.
//
// What it does: one non-blocking UDP/IPv4 socket; receive() fills a
// PacketBatch with up to kBatch datagrams in one recvmmsg(2), send() drains a
// PacketBatch with sendmmsg(2). Buffers live in the batch, allocated once, so
// the data path allocates nothing and makes one system call per batch.
//
// Parameters: the local endpoint; socket buffer sizes (4 MiB by default, so
// bursts from k paths are not dropped at the socket).
// Counters: none here; the stages count what they do with the packets.
// Threading: one thread per socket.
#pragma once

#include "osr/endpoint.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <span>
#include <sys/socket.h>

namespace nvbox::osr {

class PacketBatch {
public:
  static constexpr std::size_t kBatch = 64;
  static constexpr std::size_t kBufferSize = 2048;

  PacketBatch();
  PacketBatch(const PacketBatch &) = delete;
  PacketBatch &operator=(const PacketBatch &) = delete;

  [[nodiscard]] std::size_t size() const { return count_; }
  [[nodiscard]] bool full() const { return count_ == kBatch; }
  void clear() { count_ = 0; }

  // Received datagram i.
  [[nodiscard]] std::span<const std::uint8_t> data(std::size_t i) const {
    return {buffers_[i].data(), lengths_[i]};
  }
  [[nodiscard]] Endpoint from(std::size_t i) const { return Endpoint::fromSockaddr(addrs_[i]); }

  // The next free slot's buffer to build a datagram in; commit() queues it.
  [[nodiscard]] std::span<std::uint8_t> slot() { return buffers_[count_]; }
  void commit(std::size_t length, const Endpoint &to);
  // Queues a copy of `bytes` (a datagram being forwarded unchanged).
  bool push(std::span<const std::uint8_t> bytes, const Endpoint &to);

private:
  friend class UdpSocket;
  void prepare(std::size_t n, bool forReceive);

  std::size_t count_ = 0;
  std::array<std::array<std::uint8_t, kBufferSize>, kBatch> buffers_{};
  std::array<std::size_t, kBatch> lengths_{};
  std::array<sockaddr_in, kBatch> addrs_{};
  std::array<iovec, kBatch> iov_{};
  std::array<mmsghdr, kBatch> msgs_{};
};

class UdpSocket {
public:
  // Binds to `local`; throws std::runtime_error naming the endpoint.
  explicit UdpSocket(const Endpoint &local, int bufferBytes = 4 << 20);
  ~UdpSocket();
  UdpSocket(const UdpSocket &) = delete;
  UdpSocket &operator=(const UdpSocket &) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] Endpoint local() const;

  // Replaces the batch's contents with what is waiting (0 if nothing).
  std::size_t receive(PacketBatch &batch);
  // Sends everything queued and clears the batch. Datagrams the kernel
  // refuses (buffer full, unreachable) are dropped and counted in the return.
  std::size_t send(PacketBatch &batch);

private:
  int fd_ = -1;
};

} // namespace nvbox::osr

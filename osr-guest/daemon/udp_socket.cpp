#include "udp_socket.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace nvbox::osr {

PacketBatch::PacketBatch() {
  for (std::size_t i = 0; i < kBatch; ++i) {
    iov_[i].iov_base = buffers_[i].data();
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
    msgs_[i].msg_hdr.msg_name = &addrs_[i];
  }
}

void PacketBatch::commit(std::size_t length, const Endpoint &to) {
  lengths_[count_] = length;
  addrs_[count_] = to.toSockaddr();
  ++count_;
}

bool PacketBatch::push(std::span<const std::uint8_t> bytes, const Endpoint &to) {
  if (full() || bytes.size() > kBufferSize) {
    return false;
  }
  std::memcpy(buffers_[count_].data(), bytes.data(), bytes.size());
  commit(bytes.size(), to);
  return true;
}

void PacketBatch::prepare(std::size_t n, bool forReceive) {
  for (std::size_t i = 0; i < n; ++i) {
    iov_[i].iov_len = forReceive ? kBufferSize : lengths_[i];
    msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    msgs_[i].msg_hdr.msg_flags = 0;
    msgs_[i].msg_len = 0;
  }
}

UdpSocket::UdpSocket(const Endpoint &local, int bufferBytes) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw std::runtime_error(std::string("cannot open a UDP socket: ") + std::strerror(errno));
  }
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Best effort: SO_*BUFFORCE needs CAP_NET_ADMIN, the plain ones are capped.
  for (const int opt : {SO_RCVBUFFORCE, SO_SNDBUFFORCE}) {
    if (::setsockopt(fd_, SOL_SOCKET, opt, &bufferBytes, sizeof bufferBytes) != 0) {
      ::setsockopt(fd_, SOL_SOCKET, opt == SO_RCVBUFFORCE ? SO_RCVBUF : SO_SNDBUF, &bufferBytes,
                   sizeof bufferBytes);
    }
  }
  const sockaddr_in sa = local.toSockaddr();
  if (::bind(fd_, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    throw std::runtime_error("cannot bind UDP socket to '" + local.toString() + "': " + why);
  }
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Endpoint UdpSocket::local() const {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd_, reinterpret_cast<sockaddr *>(&sa), &len);
  return Endpoint::fromSockaddr(sa);
}

std::size_t UdpSocket::receive(PacketBatch &batch) {
  batch.prepare(PacketBatch::kBatch, true);
  const int got = ::recvmmsg(fd_, batch.msgs_.data(), PacketBatch::kBatch, MSG_DONTWAIT, nullptr);
  if (got <= 0) {
    batch.count_ = 0;
    return 0;
  }
  batch.count_ = static_cast<std::size_t>(got);
  for (std::size_t i = 0; i < batch.count_; ++i) {
    // A datagram larger than the buffer is truncated: mark it so that the
    // parser rejects it by length instead of reading a cut packet.
    const bool truncated = (batch.msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    batch.lengths_[i] = truncated ? 0 : batch.msgs_[i].msg_len;
  }
  return batch.count_;
}

std::size_t UdpSocket::send(PacketBatch &batch) {
  std::size_t dropped = 0;
  std::size_t done = 0;
  batch.prepare(batch.count_, false);
  while (done < batch.count_) {
    const int sent = ::sendmmsg(fd_, batch.msgs_.data() + done,
                                static_cast<unsigned>(batch.count_ - done), MSG_DONTWAIT);
    if (sent > 0) {
      done += static_cast<std::size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      dropped += batch.count_ - done; // the socket is full: the rest would fail too
      break;
    }
    // The first datagram of the rest failed for itself (no route, refused):
    // drop it and carry on with the others rather than stall the data path.
    ++dropped;
    ++done;
  }
  batch.count_ = 0;
  return dropped;
}

} // namespace nvbox::osr

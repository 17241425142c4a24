#include "udp_socket.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/udp.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace nvbox::osr {
namespace {

bool sameAddress(const sockaddr_in &a, const sockaddr_in &b) noexcept {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

// A UDP datagram's payload may not exceed this (65535 − IP − UDP headers).
constexpr std::size_t kMaxUdpPayload = 65507;

} // namespace

PacketBatch::PacketBatch() = default;

void PacketBatch::commit(std::size_t length, const Endpoint &to) {
  views_[count_] = View{buffers_[count_].data(), static_cast<std::uint32_t>(length),
                        static_cast<std::uint32_t>(count_)};
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

void PacketBatch::prepareReceive(bool gro) {
  if (gro && !groArena_) {
    // Default-initialised on purpose: untouched pages stay unallocated.
    groArena_.reset(new std::uint8_t[kBatch * kMaxMessage]);
  }
  for (std::size_t i = 0; i < kBatch; ++i) {
    iov_[i].iov_base = gro ? groArena_.get() + i * kMaxMessage : buffers_[i].data();
    iov_[i].iov_len = gro ? kMaxMessage : kBufferSize;
    msghdr &h = msgs_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &addrs_[i];
    h.msg_namelen = sizeof(sockaddr_in);
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    if (gro) {
      h.msg_control = control_[i].bytes.data();
      h.msg_controllen = control_[i].bytes.size();
    }
    msgs_[i].msg_len = 0;
  }
}

void PacketBatch::addReceived(std::size_t m, std::uint8_t *base, std::size_t length,
                              std::size_t segment) {
  if (segment == 0 || segment >= length) {
    views_[count_++] =
        View{base, static_cast<std::uint32_t>(length), static_cast<std::uint32_t>(m)};
    return;
  }
  for (std::size_t off = 0; off < length && count_ < views_.size(); off += segment) {
    const std::size_t n = std::min(segment, length - off);
    views_[count_++] =
        View{base + off, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(m)};
  }
}

UdpSocket::UdpSocket(const Endpoint &local, int bufferBytes, bool offload) {
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
  if (offload) {
    // Setting the socket's default segment size to 0 ("none") is how to ask
    // whether the kernel knows UDP_SEGMENT at all; each message sets its own.
    const int zero = 0;
    gso_ = ::setsockopt(fd_, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
    gro_ = ::setsockopt(fd_, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
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
  batch.count_ = 0;
  batch.prepareReceive(gro_);
  const int got = ::recvmmsg(fd_, batch.msgs_.data(), PacketBatch::kBatch, MSG_DONTWAIT, nullptr);
  for (std::size_t m = 0; got > 0 && m < static_cast<std::size_t>(got); ++m) {
    msghdr &h = batch.msgs_[m].msg_hdr;
    auto *base = static_cast<std::uint8_t *>(h.msg_iov->iov_base);
    // A datagram larger than the buffer is truncated: give it length 0 so
    // that the parser rejects it by length instead of reading a cut packet.
    if ((h.msg_flags & MSG_TRUNC) != 0) {
      batch.addReceived(m, base, 0, 0);
      continue;
    }
    std::size_t segment = 0;
    if (gro_) {
      for (cmsghdr *c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
          int size = 0;
          std::memcpy(&size, CMSG_DATA(c), sizeof size);
          segment = size > 0 ? static_cast<std::size_t>(size) : 0;
        }
      }
    }
    const std::size_t before = batch.count_;
    batch.addReceived(m, base, batch.msgs_[m].msg_len, segment);
    if (batch.count_ - before > 1) {
      counters_.groDatagrams += batch.count_ - before;
    }
  }
  return batch.count_;
}

std::size_t UdpSocket::buildGsoMessages(PacketBatch &batch) const {
  const std::size_t n = batch.count_;
  // Stable grouping by destination: O(n · destinations), n ≤ 64.
  std::array<bool, PacketBatch::kBatch> taken{};
  std::size_t j = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (taken[i]) {
      continue;
    }
    for (std::size_t t = i; t < n; ++t) {
      if (!taken[t] && sameAddress(batch.addrs_[t], batch.addrs_[i])) {
        taken[t] = true;
        batch.order_[j++] = static_cast<std::uint8_t>(t);
      }
    }
  }
  std::size_t messages = 0;
  std::size_t k = 0;
  while (k < n) {
    const std::size_t start = k;
    const std::size_t first = batch.order_[start];
    const std::size_t segment = batch.views_[first].length;
    std::size_t bytes = 0;
    // A run: same destination, every datagram `segment` bytes but the last,
    // which may be shorter; within the kernel's limits.
    while (k < n && k - start < PacketBatch::kMaxSegments) {
      const std::size_t d = batch.order_[k];
      const std::size_t len = batch.views_[d].length;
      if (!sameAddress(batch.addrs_[d], batch.addrs_[first]) || len > segment ||
          bytes + len > kMaxUdpPayload) {
        break;
      }
      batch.iov_[k] = iovec{batch.buffers_[d].data(), len};
      bytes += len;
      ++k;
      if (len < segment) {
        break;
      }
    }
    msghdr &h = batch.msgs_[messages].msg_hdr;
    h = msghdr{};
    h.msg_name = &batch.addrs_[first];
    h.msg_namelen = sizeof(sockaddr_in);
    h.msg_iov = &batch.iov_[start];
    h.msg_iovlen = k - start;
    if (k - start > 1) {
      h.msg_control = batch.control_[messages].bytes.data();
      h.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
      cmsghdr *c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto size = static_cast<std::uint16_t>(segment);
      std::memcpy(CMSG_DATA(c), &size, sizeof size);
    }
    batch.msgs_[messages].msg_len = 0;
    ++messages;
  }
  return messages;
}

std::size_t UdpSocket::sendOneByOne(const msghdr &message) {
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < message.msg_iovlen; ++i) {
    msghdr one{};
    one.msg_name = message.msg_name;
    one.msg_namelen = message.msg_namelen;
    one.msg_iov = &message.msg_iov[i];
    one.msg_iovlen = 1;
    if (::sendmsg(fd_, &one, MSG_DONTWAIT) < 0) {
      ++dropped;
    }
  }
  return dropped;
}

std::size_t UdpSocket::sendMessages(PacketBatch &batch, std::size_t messages) {
  std::size_t dropped = 0;
  std::size_t done = 0;
  while (done < messages) {
    const int sent = ::sendmmsg(fd_, batch.msgs_.data() + done,
                                static_cast<unsigned>(messages - done), MSG_DONTWAIT);
    if (sent > 0) {
      for (std::size_t m = done; m < done + static_cast<std::size_t>(sent); ++m) {
        const std::size_t datagrams = batch.msgs_[m].msg_hdr.msg_iovlen;
        if (datagrams > 1) {
          ++counters_.gsoMessages;
          counters_.gsoDatagrams += datagrams;
        }
      }
      done += static_cast<std::size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The socket is full: the rest would fail too.
      for (std::size_t m = done; m < messages; ++m) {
        dropped += batch.msgs_[m].msg_hdr.msg_iovlen;
      }
      break;
    }
    const msghdr &failed = batch.msgs_[done].msg_hdr;
    if (failed.msg_iovlen > 1 && (errno == EIO || errno == EINVAL)) {
      // EIO: the route's device cannot do UDP GSO (no checksum offload), so
      // stop asking. EINVAL: this run broke a limit of the kernel's (segment
      // count or size). Either way the run goes again as plain datagrams.
      gso_ = gso_ && errno != EIO;
      dropped += sendOneByOne(failed);
    } else {
      // The message failed for itself (no route, refused): drop it and carry
      // on with the others rather than stall the data path.
      dropped += failed.msg_iovlen;
    }
    ++done;
  }
  return dropped;
}

std::size_t UdpSocket::send(PacketBatch &batch) {
  std::size_t messages = 0;
  if (gso_) {
    messages = buildGsoMessages(batch);
  } else {
    for (; messages < batch.count_; ++messages) {
      batch.iov_[messages] = iovec{batch.buffers_[messages].data(), batch.views_[messages].length};
      msghdr &h = batch.msgs_[messages].msg_hdr;
      h = msghdr{};
      h.msg_name = &batch.addrs_[messages];
      h.msg_namelen = sizeof(sockaddr_in);
      h.msg_iov = &batch.iov_[messages];
      h.msg_iovlen = 1;
      batch.msgs_[messages].msg_len = 0;
    }
  }
  const std::size_t dropped = sendMessages(batch, messages);
  batch.count_ = 0;
  return dropped;
}

} // namespace nvbox::osr

#include "nvbox/netconfig/transfer.hpp"

#include "nvbox/error.hpp"
#include "nvbox/netconfig/netns.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <limits>
#include <random>
#include <vector>

namespace nvbox::netconfig {
namespace {

using Clock = std::chrono::steady_clock;

#ifndef IPPROTO_MPTCP
constexpr int IPPROTO_MPTCP = 262;
#endif

std::string hex(const unsigned char *d, std::size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[d[i] >> 4];
    out += digits[d[i] & 15];
  }
  return out;
}

sockaddr_in address(const std::string &ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (!ip.empty() && ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    throw UsageError("bad address '" + ip + "'");
  }
  return sa;
}

struct Socket {
  int fd;
  explicit Socket(int f) : fd(f) {
    if (fd < 0) {
      throw Error(std::string("socket: ") + std::strerror(errno));
    }
  }
  ~Socket() { ::close(fd); }
  Socket(const Socket &) = delete;
  Socket &operator=(const Socket &) = delete;
};

// A transfer that stalls (a broken path) fails instead of hanging.
void setTimeouts(int fd, std::chrono::seconds timeout) {
  const timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Transfer receive(const TransferOptions &o, std::promise<void> &listening) {
  Transfer got;
  runIn(o.serverNs, [&] {
    const Socket ls(::socket(AF_INET, SOCK_STREAM, o.mptcp ? IPPROTO_MPTCP : 0));
    const int one = 1;
    ::setsockopt(ls.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in sa = address("", o.port);
    if (::bind(ls.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0 ||
        ::listen(ls.fd, 1) != 0) {
      throw Error(std::string("listen: ") + std::strerror(errno));
    }
    listening.set_value();
    pollfd waiting{ls.fd, POLLIN, 0};
    const auto timeoutMs = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    if (::poll(&waiting, 1, static_cast<int>(timeoutMs.count())) != 1) {
      throw Error("no connection arrived at port " + std::to_string(o.port) + " within " +
                  std::to_string(timeoutMs.count() / 1000) + " s");
    }
    const Socket c(::accept(ls.fd, nullptr, nullptr));
    setTimeouts(c.fd, o.timeout);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    std::vector<unsigned char> buf(1 << 16);
    const auto start = Clock::now();
    auto nextSample = start;
    ssize_t n = 0;
    while ((n = ::read(c.fd, buf.data(), buf.size())) > 0) { // a stall ends it (timeout)
      crypto_hash_sha256_update(&st, buf.data(), static_cast<unsigned long long>(n));
      got.bytes += static_cast<std::size_t>(n);
      if (o.sampleEvery.count() > 0) {
        const auto now = Clock::now();
        if (now >= nextSample) {
          got.timeline.emplace_back(now, got.bytes);
          nextSample = now + o.sampleEvery;
        }
      }
    }
    if (o.sampleEvery.count() > 0) {
      got.timeline.emplace_back(Clock::now(), got.bytes);
    }
    got.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, d);
    got.digest = hex(d, sizeof d);
  });
  return got;
}

Transfer send(const TransferOptions &o) {
  Transfer sent;
  runIn(o.clientNs, [&] {
    const Socket s(::socket(AF_INET, SOCK_STREAM, o.mptcp ? IPPROTO_MPTCP : 0));
    setTimeouts(s.fd, o.timeout);
    if (!o.clientAddress.empty()) {
      const sockaddr_in local = address(o.clientAddress, 0);
      if (::bind(s.fd, reinterpret_cast<const sockaddr *>(&local), sizeof local) != 0) {
        throw Error(std::string("bind: ") + std::strerror(errno));
      }
    }
    const sockaddr_in sa = address(o.serverAddress, o.port);
    if (::connect(s.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
      throw Error("connect to " + o.serverAddress + " failed: " + std::strerror(errno));
    }
    std::mt19937_64 rng(42);
    std::vector<unsigned char> buf(1 << 16);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    const auto start = Clock::now();
    const bool timed = o.duration.count() > 0;
    const std::size_t limit =
        timed && o.bytes == 0 ? std::numeric_limits<std::size_t>::max() : o.bytes;
    bool poked = false;
    while (sent.bytes < limit && (!timed || Clock::now() - start < o.duration)) {
      for (std::size_t i = 0; i + 8 <= buf.size(); i += 8) {
        const std::uint64_t v = rng();
        std::memcpy(&buf[i], &v, 8);
      }
      const std::size_t chunk = std::min(buf.size(), limit - sent.bytes);
      crypto_hash_sha256_update(&st, buf.data(), chunk);
      std::size_t off = 0;
      while (off < chunk) {
        // MSG_NOSIGNAL: a receiver that gave up is an error here, not SIGPIPE.
        const ssize_t w = ::send(s.fd, buf.data() + off, chunk - off, MSG_NOSIGNAL);
        if (w <= 0) {
          throw Error("the transfer stalled after " + std::to_string(sent.bytes) +
                      " bytes: " + std::strerror(errno));
        }
        off += static_cast<std::size_t>(w);
      }
      sent.bytes += chunk;
      if (!poked && o.midway && sent.bytes >= limit / 3) {
        poked = true;
        o.midway();
      }
    }
    ::shutdown(s.fd, SHUT_WR);
    char c = 0;
    (void)::read(s.fd, &c, 1); // returns when the server closed: everything arrived
    sent.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, d);
    sent.digest = hex(d, sizeof d);
  });
  return sent;
}

} // namespace

std::pair<Transfer, Transfer> transfer(const TransferOptions &options) {
  if (sodium_init() < 0) {
    throw Error("libsodium does not initialise");
  }
  std::promise<void> listening;
  auto ready = listening.get_future();
  auto server = std::async(std::launch::async, [&] { return receive(options, listening); });
  if (ready.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    throw Error("the server did not start listening");
  }
  const Transfer sent = send(options);
  return {sent, server.get()};
}

} // namespace nvbox::netconfig

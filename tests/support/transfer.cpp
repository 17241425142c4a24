#include "transfer.hpp"

#include "nvbox/netconfig/netns.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <cstring>
#include <future>
#include <netinet/in.h>
#include <random>
#include <sodium.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace nvbox::test {
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
    throw std::invalid_argument("bad address '" + ip + "'");
  }
  return sa;
}

struct Socket {
  int fd;
  explicit Socket(int f) : fd(f) {
    if (fd < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
  }
  ~Socket() { ::close(fd); }
  Socket(const Socket &) = delete;
  Socket &operator=(const Socket &) = delete;
};

Transfer receive(const TransferOptions &o, std::promise<void> &listening) {
  Transfer got;
  netconfig::runIn(o.serverNs, [&] {
    const Socket ls(::socket(AF_INET, SOCK_STREAM, o.mptcp ? IPPROTO_MPTCP : 0));
    const int one = 1;
    ::setsockopt(ls.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in sa = address("", o.port);
    if (::bind(ls.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0 ||
        ::listen(ls.fd, 1) != 0) {
      throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    }
    listening.set_value();
    const Socket c(::accept(ls.fd, nullptr, nullptr));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    std::vector<unsigned char> buf(1 << 16);
    const auto start = Clock::now();
    ssize_t n = 0;
    while ((n = ::read(c.fd, buf.data(), buf.size())) > 0) {
      crypto_hash_sha256_update(&st, buf.data(), static_cast<unsigned long long>(n));
      got.bytes += static_cast<std::size_t>(n);
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
  netconfig::runIn(o.clientNs, [&] {
    const Socket s(::socket(AF_INET, SOCK_STREAM, o.mptcp ? IPPROTO_MPTCP : 0));
    if (!o.clientAddress.empty()) {
      const sockaddr_in local = address(o.clientAddress, 0);
      if (::bind(s.fd, reinterpret_cast<const sockaddr *>(&local), sizeof local) != 0) {
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
      }
    }
    const sockaddr_in sa = address(o.serverAddress, o.port);
    if (::connect(s.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
      throw std::runtime_error("connect to " + o.serverAddress +
                               " failed: " + std::strerror(errno));
    }
    std::mt19937_64 rng(42);
    std::vector<unsigned char> buf(1 << 16);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    const auto start = Clock::now();
    bool poked = false;
    while (sent.bytes < o.bytes) {
      for (std::size_t i = 0; i + 8 <= buf.size(); i += 8) {
        const std::uint64_t v = rng();
        std::memcpy(&buf[i], &v, 8);
      }
      const std::size_t chunk = std::min(buf.size(), o.bytes - sent.bytes);
      crypto_hash_sha256_update(&st, buf.data(), chunk);
      std::size_t off = 0;
      while (off < chunk) {
        const ssize_t w = ::write(s.fd, buf.data() + off, chunk - off);
        if (w <= 0) {
          throw std::runtime_error("write failed after " + std::to_string(sent.bytes) + " bytes");
        }
        off += static_cast<std::size_t>(w);
      }
      sent.bytes += chunk;
      if (!poked && o.midway && sent.bytes >= o.bytes / 3) {
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
    throw std::runtime_error("libsodium does not initialise");
  }
  std::promise<void> listening;
  auto ready = listening.get_future();
  auto server = std::async(std::launch::async, [&] { return receive(options, listening); });
  if (ready.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    throw std::runtime_error("the server did not start listening");
  }
  const Transfer sent = send(options);
  return {sent, server.get()};
}

nlohmann::json osrdControl(const std::string &socketPath, const nlohmann::json &request) {
  const Socket fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  socketPath.copy(sa.sun_path, sizeof sa.sun_path - 1);
  if (::connect(fd.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    throw std::runtime_error("cannot reach osrd at " + socketPath);
  }
  const std::string line = request.dump() + "\n";
  if (::write(fd.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error("cannot write to " + socketPath);
  }
  std::string reply;
  char buf[65536];
  while (reply.find('\n') == std::string::npos) {
    const ssize_t n = ::read(fd.fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
}

} // namespace nvbox::test

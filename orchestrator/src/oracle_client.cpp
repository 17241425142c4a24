#include "nvbox/oracle_client.hpp"

#include "nvbox/error.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nvbox {
namespace {

namespace oracle = osr::oracle;
using Clock = std::chrono::steady_clock;

} // namespace

std::int64_t wallClockNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

OracleClient::OracleClient(const osr::Endpoint &oracle, const osr::OverlayKey &key,
                           std::chrono::milliseconds timeout, int attempts)
    : oracle_(oracle), key_(key), timeout_(timeout), attempts_(attempts) {
  const std::string where = "cannot reach oracle at '" + oracle_.toString() + "'";
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw Error(where + ": " + std::strerror(errno));
  }
  const sockaddr_in sa = oracle_.toSockaddr();
  if (::connect(fd_, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(where + ": " + std::strerror(e));
  }
}

OracleClient::~OracleClient() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

osr::Endpoint OracleClient::self() const {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd_, reinterpret_cast<sockaddr *>(&sa), &len);
  return osr::Endpoint::fromSockaddr(sa);
}

void OracleClient::exchange(const std::function<std::vector<std::uint8_t>()> &build,
                            std::uint64_t nonce, oracle::MessageType type,
                            const std::function<bool(const oracle::Message &)> &done) {
  std::vector<std::uint8_t> buf(oracle::kMaxDatagram + 1);
  for (int attempt = 0; attempt < attempts_; ++attempt) {
    // Built anew per attempt: a fresh timestamp, or the oracle would take
    // the retry for a replay.
    const std::vector<std::uint8_t> request = build();
    if (::send(fd_, request.data(), request.size(), 0) < 0 && errno != ECONNREFUSED) {
      throw Error("cannot reach oracle at '" + oracle_.toString() + "': " + std::strerror(errno));
    }
    const auto deadline = Clock::now() + timeout_;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left, 1))) <= 0) {
        continue;
      }
      const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
      if (got < 0) {
        continue; // ECONNREFUSED from an earlier attempt: keep waiting, then retry
      }
      const oracle::Message m =
          oracle::parse(std::span(buf.data(), static_cast<std::size_t>(got)), key_);
      if (m.ok() && m.header.type == type && m.header.nonce == nonce && done(m)) {
        return;
      }
    }
  }
  throw Error("cannot reach oracle at '" + oracle_.toString() + "'",
              "no authenticated answer after " + std::to_string(attempts_) +
                  " attempts; is 'nvbox oracle serve' running there with the same key?");
}

oracle::Answer OracleClient::query(const osr::Endpoint &src, const osr::Endpoint &dst,
                                   std::uint8_t k, oracle::Objective objective) {
  const std::uint64_t nonce = oracle::randomNonce();
  const auto build = [&] {
    std::vector<std::uint8_t> out(oracle::kOverhead + oracle::kQuerySize);
    const oracle::Header h{.type = oracle::MessageType::Query,
                           .sender = self(),
                           .nonce = nonce,
                           .timestamp_ns = wallClockNs()};
    out.resize(oracle::encodeQuery(
        h, oracle::Query{.src = src, .dst = dst, .k = k, .objective = objective}, key_, out));
    return out;
  };
  oracle::Answer answer;
  exchange(build, nonce, oracle::MessageType::Answer, [&](const oracle::Message &m) {
    answer = oracle::decodeAnswer(m);
    return true;
  });
  return answer;
}

nlohmann::json OracleClient::map() {
  const std::uint64_t nonce = oracle::randomNonce();
  const auto build = [&] {
    std::vector<std::uint8_t> out(oracle::kOverhead);
    const oracle::Header h{.type = oracle::MessageType::MapRequest,
                           .sender = self(),
                           .nonce = nonce,
                           .timestamp_ns = wallClockNs()};
    out.resize(oracle::encodeMapRequest(h, key_, out));
    return out;
  };
  std::vector<std::string> chunks;
  std::size_t have = 0;
  exchange(build, nonce, oracle::MessageType::MapReply, [&](const oracle::Message &m) {
    const oracle::MapChunk c = oracle::decodeMapChunk(m);
    if (chunks.empty()) {
      chunks.resize(c.count);
    }
    if (c.count != chunks.size() || !chunks[c.index].empty()) {
      return false;
    }
    chunks[c.index].assign(reinterpret_cast<const char *>(c.text.data()), c.text.size());
    return ++have == chunks.size();
  });
  std::string text;
  for (const auto &c : chunks) {
    text += c;
  }
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) {
    throw Error("the oracle at '" + oracle_.toString() + "' sent a map that is not JSON");
  }
  return json;
}

} // namespace nvbox

#include "nvbox/oracle_server.hpp"

#include "nvbox/error.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nvbox {
namespace {

using osr::Nanos;
namespace oracle = osr::oracle;

Nanos clockNow(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return Nanos(static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
}

std::int64_t ms(Nanos n) {
  return n.count() / 1'000'000;
}

} // namespace

nlohmann::json altoMap(const osr::OneHopTable &table, Nanos now) {
  nlohmann::json members = nlohmann::json::object();
  for (std::uint32_t id = 0; id < table.members(); ++id) {
    const auto &m = table.member(id);
    const osr::Endpoint ip{m.endpoint.addr, 0};
    const std::string addr = ip.toString().substr(0, ip.toString().rfind(':'));
    nlohmann::json member = {{"ipv4", nlohmann::json::array({addr})},
                             {"port", m.endpoint.port},
                             {"group", std::string(m.group.view())}};
    member["report_age_ms"] = m.reported ? nlohmann::json(ms(now - m.last_report)) : nullptr;
    members[m.endpoint.toString()] = member;
  }
  nlohmann::json costs = nlohmann::json::object();
  const auto maxAge = table.maxAge();
  table.forEach(now, [&](const osr::OneHopTable::Measurement &m) {
    costs[table.member(m.src).endpoint.toString()][table.member(m.dst).endpoint.toString()] = {
        {"delay_us", m.delay_us},
        {"rate", m.rate},
        {"loss", static_cast<double>(m.loss) / oracle::kLossScale},
        {"age_ms", ms(m.age)},
        {"fresh", m.age <= maxAge}};
  });
  return {
      {"meta",
       {{"vtag",
         {{"resource-id", "nvbox-oracle-map"}, {"tag", std::to_string(table.counters().reports)}}},
        {"cost-types",
         {{"delay_us", "one-way delay, microseconds (RTT/2 of loop probes)"},
          {"rate", "available rate estimate, bytes/s (0 = unknown)"},
          {"loss", "fraction of probes lost"}}},
        {"max_age_ms", ms(maxAge)}}},
      {"network-map", members},
      {"cost-map", costs}};
}

OracleServer::OracleServer(const Config &config)
    : config_(config), table_(osr::OneHopTable::Config{.max_age = config.maxAge}),
      reportGuard_(config.window), queryGuard_(config.window) {
  const std::string where = "cannot listen on '" + config_.listen.toString() + "': ";
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw Error(where + std::strerror(errno));
  }
  const sockaddr_in sa = config_.listen.toSockaddr();
  if (::bind(fd_, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd_);
    throw Error(where + std::strerror(e), "is another oracle running there?");
  }
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_ < 0 || wake_ < 0) {
    throw Error(where + "epoll/eventfd: " + std::strerror(errno));
  }
  for (int fd : {fd_, wake_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
}

OracleServer::~OracleServer() {
  for (int fd : {fd_, epoll_, wake_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

osr::Endpoint OracleServer::local() const {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd_, reinterpret_cast<sockaddr *>(&sa), &len);
  return osr::Endpoint::fromSockaddr(sa);
}

osr::Endpoint OracleServer::self() const {
  osr::Endpoint ep = local();
  if (ep.addr == 0) {
    ep.addr = INADDR_LOOPBACK; // bound to any address: answers are matched by nonce
  }
  return ep;
}

void OracleServer::stop() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_, &one, sizeof one);
}

std::vector<OracleServer::Reply> OracleServer::handle(std::span<const std::uint8_t> datagram,
                                                      Nanos mono, Nanos wall) {
  std::vector<Reply> replies;
  const oracle::Message m = oracle::parse(datagram, config_.key);
  if (!m.ok()) {
    ++rejected_[std::string(oracle::toString(m.status))];
    return replies;
  }
  const oracle::Header reply{.type = oracle::MessageType::Answer,
                             .sender = self(),
                             .nonce = m.header.nonce,
                             .timestamp_ns = wall.count()};
  switch (m.header.type) {
  case oracle::MessageType::Report: {
    const auto verdict = reportGuard_.accept(m.header.sender, m.header.timestamp_ns, wall);
    if (verdict != osr::ReplayGuard::Verdict::Accepted) {
      ++refused_[std::string("report ") + osr::toString(verdict)];
      return replies;
    }
    const oracle::Report r = oracle::decodeReport(m);
    std::vector<oracle::ReportEntry> entries(r.count());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      entries[i] = r.entry(i);
    }
    if (table_.report(m.header.sender, r.group.view(), entries, mono)) {
      ++reports_;
    } else {
      ++refused_["report: too many members"];
    }
    return replies;
  }
  case oracle::MessageType::Query:
  case oracle::MessageType::MapRequest: {
    const auto verdict = queryGuard_.accept(m.header.sender, m.header.timestamp_ns, wall);
    if (verdict != osr::ReplayGuard::Verdict::Accepted) {
      ++refused_[std::string("query ") + osr::toString(verdict)];
      return replies;
    }
    if (m.header.type == oracle::MessageType::Query) {
      ++queries_;
      const oracle::Query q = oracle::decodeQuery(m);
      const oracle::Answer a = table_.query(q.src, q.dst, q.k, q.objective, mono);
      std::vector<std::uint8_t> out(oracle::kMaxDatagram);
      out.resize(oracle::encodeAnswer(reply, a, config_.key, out));
      replies.push_back(Reply{std::move(out)});
      return replies;
    }
    ++mapRequests_;
    const std::string text = map(mono).dump();
    const std::size_t chunks =
        std::max<std::size_t>(1, (text.size() + oracle::kMaxMapChunk - 1) / oracle::kMaxMapChunk);
    if (chunks > 0xFFFF) {
      ++refused_["map too large"];
      return replies;
    }
    for (std::size_t i = 0; i < chunks; ++i) {
      const std::size_t at = i * oracle::kMaxMapChunk;
      const auto piece = std::span(reinterpret_cast<const std::uint8_t *>(text.data()) + at,
                                   std::min(oracle::kMaxMapChunk, text.size() - at));
      std::vector<std::uint8_t> out(oracle::kMaxDatagram);
      out.resize(oracle::encodeMapChunk(reply, static_cast<std::uint16_t>(i),
                                        static_cast<std::uint16_t>(chunks), piece, config_.key,
                                        out));
      replies.push_back(Reply{std::move(out)});
    }
    return replies;
  }
  default:
    ++rejected_["unexpected type"];
    return replies;
  }
}

void OracleServer::run() {
  std::vector<std::uint8_t> buf(oracle::kMaxDatagram + 1);
  for (;;) {
    epoll_event events[2];
    const int n = ::epoll_wait(epoll_, events, 2, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error(std::string("oracle: epoll_wait: ") + std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_) {
        return;
      }
    }
    for (int budget = 0; budget < 256; ++budget) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t got =
          ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr *>(&from), &len);
      if (got < 0) {
        break;
      }
      try {
        for (const auto &r : handle(std::span(buf.data(), static_cast<std::size_t>(got)),
                                    clockNow(CLOCK_MONOTONIC), clockNow(CLOCK_REALTIME))) {
          if (!r.bytes.empty()) {
            ::sendto(fd_, r.bytes.data(), r.bytes.size(), 0,
                     reinterpret_cast<const sockaddr *>(&from), sizeof from);
          }
        }
      } catch (const std::bad_alloc &) {
        ++refused_["out of memory"];
      }
    }
  }
}

nlohmann::json OracleServer::map(Nanos mono) const {
  return altoMap(table_, mono);
}

nlohmann::json OracleServer::status() const {
  return {{"members", table_.members()}, {"pairs", table_.pairs()},      {"reports", reports_},
          {"queries", queries_},         {"map_requests", mapRequests_}, {"rejected", rejected_},
          {"refused", refused_}};
}

} // namespace nvbox

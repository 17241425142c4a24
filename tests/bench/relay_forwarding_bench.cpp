// relay_forwarding_bench — how fast one osrd relay forwards on one core,
// next to the kernel forwarding the same datagrams in the same run.
//
//   relay_forwarding_bench [DIR]     (writes DIR/relay_forwarding.csv; default: bench)
//
// Topology: three namespaces, unshaped veth links, nothing in between.
//
//   gen 10.71.1.1 ── 10.71.1.2 relay 10.71.2.1 ── 10.71.2.2 sink
//   generator        osrd (--listen 10.71.1.2:7400)  receiver :9000
//   CPU 0            CPU 1                           CPU 0
//
// The generator (a thread in gen) sends pre-encoded, authenticated DATA
// parts (wire::encode, payload 64 or 1400 bytes, destination = the sink's
// UDP port) with sendmmsg; osrd verifies each tag and forwards the datagram
// unchanged with sendmmsg; a receiver thread in sink counts datagrams with
// recvmmsg. The baseline is the relay namespace's kernel forwarding the very
// same datagrams (ip_forward=1; the generator sends them straight to the
// sink, routed via the relay). A second osrd with --offload false
// (osrd-plain, port 7401) is the baseline of what UDP GSO buys: the first
// sends each batch's datagrams as one GSO message per destination. RPS steers the relay's receive
// softirq to CPU 1, so all relay work lands on CPU 1 — for both relays that includes the veth
// hand-over to the sink and the sink's UDP receive, which run in the sender's context — and the
// generator and receiver own CPU 0.
//
// Two loads: "window" (closed loop, a bounded number of datagrams in
// flight: the forwarding capacity, no queue overflows) and "blast" (open loop,
// as fast as the generator goes: the relay under overload). Each of
// {window, blast} × {kernel, osrd, osrd-plain} × {64, 1400} runs 3 times, interleaved,
// 0.25 s warm-up + 1.5 s measured; figures are medians. The measured threads
// and osrd run at nice -20, their session's autogroup too, so that other
// work on the shared machine does not decide the figures (softirq preempts
// every task anyway).
// Exits non-zero only when something fails — not when the 1 Mpps goal is
// missed.
#include "lab.hpp"
#include "process.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"
#include "osr/wire.hpp"

#include "bench_stats.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

namespace netconfig = nvbox::netconfig;
namespace osr = nvbox::osr;
using Clock = std::chrono::steady_clock;
using nvbox::test::NetLab;
using namespace std::chrono_literals;

constexpr const char *kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char *kGenAddr = "10.71.1.1";
constexpr const char *kRelayGenAddr = "10.71.1.2";
constexpr const char *kRelaySinkAddr = "10.71.2.1";
constexpr const char *kSinkAddr = "10.71.2.2";
constexpr std::uint16_t kRelayPort = 7400;
constexpr std::uint16_t kSinkPort = 9000;
constexpr int kRelayCpu = 1;
constexpr int kLoadCpu = 0;
constexpr int kRuns = 3;
constexpr auto kWarmup = 250ms;
constexpr auto kMeasure = 1500ms;
constexpr auto kDrain = 150ms;
constexpr std::size_t kGenBatch = 64; // distinct pre-encoded datagrams per sendmmsg
// Load::Window: datagrams in flight at most. Enough for several ms of work,
// less than the queue in front of the relay: the kernel's per-CPU backlog
// (net.core.netdev_max_backlog, 1000) or osrd's socket (8 MiB).
constexpr std::size_t kKernelWindow = 768;
constexpr std::size_t kOsrdWindow = 2048;
// Load::Window: a window with no delivery for this long is taken as lost.
constexpr auto kGiveUp = 20ms;
constexpr std::size_t kRecvBatch = 64;
constexpr std::size_t kRecvBuffer = 2048;
// Ethernet header + IPv4 + UDP around each datagram on the veth.
constexpr std::size_t kFrameOverhead = 14 + 20 + 8;
constexpr double kGoalPps = 1e6;
constexpr int kNice = -20;

void pinThisThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu), &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) {
    throw std::runtime_error("cannot pin a thread to CPU " + std::to_string(cpu) + ": " +
                             std::strerror(errno));
  }
}

// The machine is shared: the measured threads run at nice -20 (as osrd does),
// so that other work on their CPU does not decide the figures. The kernel's
// forwarding runs in softirq, which preempts every task anyway.
void boostThisThread() {
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNice) != 0) {
    throw std::runtime_error(std::string("cannot renice a thread: ") + std::strerror(errno));
  }
}

// With autogroup scheduling (kernel.sched_autogroup_enabled), CFS first
// shares a CPU between sessions and applies nice only inside one, so the
// boost goes to this session's autogroup as well (osrd, the generator and
// the receiver all belong to it); the old value is put back at the end.
class SessionBoost {
public:
  SessionBoost() {
    std::ifstream in("/proc/self/autogroup");
    std::string group;
    std::string word;
    int nice = 0;
    if (in >> group >> word >> nice && write(kNice)) {
      old_ = nice;
      active_ = true;
    }
  }
  ~SessionBoost() {
    if (active_) {
      write(old_);
    }
  }
  SessionBoost(const SessionBoost &) = delete;
  SessionBoost &operator=(const SessionBoost &) = delete;
  [[nodiscard]] bool active() const { return active_; }

private:
  static bool write(int nice) {
    std::ofstream out("/proc/self/autogroup");
    out << nice;
    return static_cast<bool>(out.flush());
  }
  int old_ = 0;
  bool active_ = false;
};

sockaddr_in socketAddress(const char *ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    throw std::runtime_error(std::string("bad address ") + ip);
  }
  return sa;
}

std::string nsName(const std::string &role) {
  return "nvbox-test-" + std::to_string(::getpid()) + "-" + role;
}

// --- topology ---------------------------------------------------------------

// Receive Packet Steering: softirq receive work of `dev` in `ns` runs on the
// CPUs of `mask`. sysfs shows the namespace it was mounted in, so a private
// sysfs is mounted for the write, in a mount namespace of the helper thread.
bool steerReceive(const std::string &ns, const std::string &dev, unsigned mask) {
  bool ok = false;
  netconfig::runIn(ns, [&] {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return;
    }
    char dir[] = "/tmp/nvbox-test-sysfs-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
      return;
    }
    if (::mount("sysfs", dir, "sysfs", 0, nullptr) == 0) {
      std::ofstream out(std::string(dir) + "/class/net/" + dev + "/queues/rx-0/rps_cpus");
      out << std::hex << mask;
      ok = static_cast<bool>(out.flush());
      out.close();
      ::umount2(dir, MNT_DETACH);
    }
    ::rmdir(dir);
  });
  return ok;
}

class Topology {
public:
  Topology() : gen_(nsName("fwgen")), relay_(nsName("fwrelay")), sink_(nsName("fwsink")) {
    NetLab wiring; // its link and sysctl helpers; the namespaces stay this bench's
    wiring.link(gen(), "v-relay", std::string(kGenAddr) + "/24", relay(), "v-gen",
                std::string(kRelayGenAddr) + "/24");
    wiring.link(relay(), "v-sink", std::string(kRelaySinkAddr) + "/24", sink(), "v-relay",
                std::string(kSinkAddr) + "/24");
    netconfig::runIn(gen(),
                     [] { netconfig::Rtnetlink().addRoute("10.71.2.0/24", kRelayGenAddr, {}); });
    netconfig::runIn(sink(),
                     [] { netconfig::Rtnetlink().addRoute("10.71.1.0/24", kRelaySinkAddr, {}); });
    wiring.sysctl(relay(), "net.ipv4.ip_forward", "1");
    steered_ = steerReceive(relay(), "v-gen", 1U << kRelayCpu);
  }

  [[nodiscard]] const std::string &gen() const { return gen_.name(); }
  [[nodiscard]] const std::string &relay() const { return relay_.name(); }
  [[nodiscard]] const std::string &sink() const { return sink_.name(); }
  [[nodiscard]] bool steered() const { return steered_; }

private:
  netconfig::NetworkNamespace gen_, relay_, sink_;
  bool steered_ = false;
};

// --- counters ---------------------------------------------------------------

// "Ip:ForwDatagrams", "Udp:RcvbufErrors", … of the namespace ns.
std::map<std::string, std::uint64_t> snmp(const std::string &ns) {
  std::map<std::string, std::uint64_t> out;
  netconfig::runIn(ns, [&] {
    // /proc/self/net would show the thread-group leader's namespace.
    std::ifstream in("/proc/thread-self/net/snmp");
    std::string names;
    std::string values;
    while (std::getline(in, names) && std::getline(in, values)) {
      std::istringstream n(names);
      std::istringstream v(values);
      std::string prefix;
      std::string value;
      n >> prefix;
      v >> value;
      std::string name;
      while (n >> name && v >> value) {
        if (!value.empty() && value[0] != '-') {
          out[prefix + name] = std::stoull(value);
        }
      }
    }
  });
  return out;
}

struct CpuTimes {
  std::uint64_t busy = 0;
  std::uint64_t softirq = 0;
  std::uint64_t total = 0;
};

CpuTimes cpuTimes(int cpu) {
  std::ifstream in("/proc/stat");
  const std::string want = "cpu" + std::to_string(cpu);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name != want) {
      continue;
    }
    // user nice system idle iowait irq softirq steal
    std::vector<std::uint64_t> v;
    std::uint64_t x = 0;
    while (v.size() < 8 && fields >> x) {
      v.push_back(x);
    }
    if (v.size() < 8) {
      break;
    }
    CpuTimes t;
    for (const auto y : v) {
      t.total += y;
    }
    t.busy = t.total - v[3] - v[4];
    t.softirq = v[6];
    return t;
  }
  throw std::runtime_error("cannot read " + want + " from /proc/stat");
}

// utime + stime of a process, in clock ticks.
std::uint64_t processTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(in, text);
  const auto close = text.rfind(')');
  if (close == std::string::npos) {
    throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + "/stat");
  }
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  std::uint64_t utime = 0;
  std::uint64_t stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) {
      utime = std::stoull(field);
    } else if (i == 15) {
      stime = std::stoull(field);
    }
  }
  return utime + stime;
}

nlohmann::json control(const std::string &socketPath, const nlohmann::json &request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  socketPath.copy(sa.sun_path, sizeof sa.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    throw std::runtime_error("cannot reach osrd at " + socketPath);
  }
  const std::string line = request.dump() + "\n";
  (void)::write(fd, line.data(), line.size());
  std::string reply;
  std::vector<char> buf(1 << 16);
  while (reply.find('\n') == std::string::npos) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    reply.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
}

// --- traffic ----------------------------------------------------------------

class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {
    if (fd_ < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  [[nodiscard]] int get() const { return fd_; }

private:
  int fd_;
};

// A thread that runs `body` inside namespace `ns`, pinned to `cpu` and
// boosted, until stopped; stops and joins on destruction, so that nothing
// outlives an error.
class NsThread {
public:
  using Body = std::function<void(const std::atomic<bool> &stop, std::atomic<bool> &ready)>;

  NsThread(const std::string &ns, int cpu, Body body) {
    thread_ = std::thread([this, ns, cpu, body = std::move(body)] {
      try {
        netconfig::runIn(ns, [&] {
          pinThisThread(cpu);
          boostThisThread();
          body(stop_, ready_);
        });
      } catch (const std::exception &e) {
        error_ = e.what();
      }
      done_ = true;
    });
    while (!ready_ && !done_) {
      std::this_thread::sleep_for(1ms);
    }
    if (done_) {
      thread_.join();
      throw std::runtime_error(error_.empty() ? "thread ended early" : error_);
    }
  }
  ~NsThread() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  NsThread(const NsThread &) = delete;
  NsThread &operator=(const NsThread &) = delete;

  // Stops the thread; rethrows what it failed with, if it did.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    if (!error_.empty()) {
      throw std::runtime_error(std::exchange(error_, {}));
    }
  }

private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> done_{false};
  std::string error_;
  std::thread thread_;
};

// Counts every datagram arriving at the sink's UDP port (recvmmsg).
class Sink {
public:
  explicit Sink(const std::string &ns)
      : thread_(ns, kLoadCpu, [this](const std::atomic<bool> &stop, std::atomic<bool> &ready) {
          receive(stop, ready);
        }) {}

  [[nodiscard]] std::uint64_t packets() const { return packets_.load(); }
  [[nodiscard]] const std::atomic<std::uint64_t> &packetCounter() const { return packets_; }
  [[nodiscard]] std::uint64_t bytes() const { return bytes_.load(); }
  void stop() { thread_.stop(); }

private:
  void receive(const std::atomic<bool> &stop, std::atomic<bool> &ready) {
    const Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int rcvbuf = 32 << 20;
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    const timeval timeout{0, 50'000};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    const sockaddr_in sa = socketAddress(kSinkAddr, kSinkPort);
    if (::bind(s.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
      throw std::runtime_error(std::string("sink bind: ") + std::strerror(errno));
    }
    std::vector<std::array<std::uint8_t, kRecvBuffer>> buffers(kRecvBatch);
    std::vector<iovec> iov(kRecvBatch);
    std::vector<mmsghdr> msgs(kRecvBatch);
    for (std::size_t i = 0; i < kRecvBatch; ++i) {
      iov[i] = {buffers[i].data(), kRecvBuffer};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    ready = true;
    while (!stop) {
      const int n = ::recvmmsg(s.get(), msgs.data(), kRecvBatch, MSG_WAITFORONE, nullptr);
      if (n <= 0) {
        continue; // timeout or EINTR: look at the stop flag
      }
      std::uint64_t total = 0;
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        total += msgs[i].msg_len;
      }
      bytes_.fetch_add(total, std::memory_order_relaxed);
      packets_.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_release);
    }
  }

  std::atomic<std::uint64_t> packets_{0};
  std::atomic<std::uint64_t> bytes_{0};
  NsThread thread_; // last: starts after the counters exist, stops first
};

// How the generator loads the relay.
enum class Load {
  // Closed loop: at most a window of datagrams between generator and sink,
  // so nothing overflows and drops: the relay's forwarding capacity.
  Window,
  // Open loop: sendmmsg as fast as the generator core goes: the relay under
  // overload, paying for what it receives and cannot forward.
  Blast,
};

const char *toString(Load l) {
  return l == Load::Window ? "window" : "blast";
}

// Sends `packets` (kGenBatch per sendmmsg, over and over) to `to`; with a
// window (not 0), never more than `window` datagrams beyond `delivered`.
class Generator {
public:
  Generator(const std::string &ns, std::vector<std::vector<std::uint8_t>> packets, sockaddr_in to,
            std::size_t window, const std::atomic<std::uint64_t> &delivered)
      : packets_(std::move(packets)), to_(to), window_(window), delivered_(delivered),
        thread_(ns, kLoadCpu, [this](const std::atomic<bool> &stop, std::atomic<bool> &ready) {
          send(stop, ready);
        }) {}

  [[nodiscard]] std::uint64_t sent() const { return sent_.load(); }
  // Datagrams the window gave up waiting for.
  [[nodiscard]] std::uint64_t lost() const { return lost_.load(); }
  void stop() { thread_.stop(); }

private:
  void send(const std::atomic<bool> &stop, std::atomic<bool> &ready) {
    const Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int sndbuf = 4 << 20;
    ::setsockopt(s.get(), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    if (::connect(s.get(), reinterpret_cast<const sockaddr *>(&to_), sizeof to_) != 0) {
      throw std::runtime_error(std::string("generator connect: ") + std::strerror(errno));
    }
    std::vector<iovec> iov(packets_.size());
    std::vector<mmsghdr> msgs(packets_.size());
    for (std::size_t i = 0; i < packets_.size(); ++i) {
      iov[i] = {packets_[i].data(), packets_[i].size()};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    ready = true;
    const auto n = static_cast<unsigned>(msgs.size());
    // Window accounting: in flight = sent − (delivered since start + given up).
    const std::uint64_t deliveredAtStart = delivered_.load(std::memory_order_acquire);
    std::uint64_t sent = 0;
    std::uint64_t givenUp = 0;
    std::uint64_t lastSeen = deliveredAtStart;
    auto lastProgress = Clock::now();
    while (!stop) {
      if (window_ != 0) {
        const std::uint64_t seen = delivered_.load(std::memory_order_acquire);
        const auto now = Clock::now();
        if (seen != lastSeen) {
          lastSeen = seen;
          lastProgress = now;
        }
        const auto done = static_cast<std::int64_t>(seen - deliveredAtStart + givenUp);
        const std::int64_t inFlight = static_cast<std::int64_t>(sent) - done;
        if (inFlight + static_cast<std::int64_t>(n) > static_cast<std::int64_t>(window_)) {
          if (now - lastProgress > kGiveUp) {
            // Lost in flight (ARP resolution, a drop): stop waiting for it.
            givenUp += static_cast<std::uint64_t>(std::max<std::int64_t>(inFlight, 0));
            lost_.store(givenUp, std::memory_order_relaxed);
            lastProgress = now;
          } else {
            std::this_thread::sleep_for(20us);
          }
          continue;
        }
      }
      const int got = ::sendmmsg(s.get(), msgs.data(), n, 0);
      if (got > 0) {
        sent += static_cast<std::uint64_t>(got);
        sent_.store(sent, std::memory_order_relaxed);
      }
      // Errors (an ICMP-reported ECONNREFUSED, ENOBUFS) are ignored.
    }
  }

  std::vector<std::vector<std::uint8_t>> packets_;
  sockaddr_in to_;
  std::size_t window_;
  const std::atomic<std::uint64_t> &delivered_;
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> lost_{0};
  NsThread thread_;
};

// kGenBatch valid DATA parts of one flow with `payload` bytes each, for the sink.
std::vector<std::vector<std::uint8_t>> encodeParts(std::size_t payload,
                                                   osr::PacketAuthenticator &auth) {
  const osr::Endpoint sink =
      *osr::Endpoint::parse(std::string(kSinkAddr) + ":" + std::to_string(kSinkPort));
  std::vector<std::uint8_t> body(payload);
  for (std::size_t i = 0; i < payload; ++i) {
    body[i] = static_cast<std::uint8_t>(i * 131 + 7);
  }
  std::vector<std::vector<std::uint8_t>> out;
  for (std::size_t i = 0; i < kGenBatch; ++i) {
    osr::wire::Header h;
    h.type = osr::wire::PacketType::Data;
    h.flow_id = 1;
    h.seq = static_cast<std::uint32_t>(i);
    h.flags = osr::wire::kFlagFirst | osr::wire::kFlagLast;
    h.dst = sink;
    std::vector<std::uint8_t> packet(osr::wire::packetSize(payload));
    if (osr::wire::encode(h, body, auth, packet) != packet.size()) {
      throw std::runtime_error("wire::encode failed");
    }
    out.push_back(std::move(packet));
  }
  return out;
}

// CPU nanoseconds per wire::parse (size checks + tag verify: GHASH and one AES block):
// the part of osrd's per-packet work that is not system calls.
double parseNanos(const std::vector<std::vector<std::uint8_t>> &packets,
                  osr::PacketAuthenticator &auth) {
  // Thread CPU time, not wall time: the machine is shared.
  const auto cpuNow = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  std::size_t n = 0;
  std::size_t ok = 0;
  const double start = cpuNow();
  while (cpuNow() - start < 150e6) {
    for (const auto &p : packets) {
      ok += osr::wire::parse(p, auth).ok() ? 1U : 0U;
    }
    n += packets.size();
  }
  const double ns = cpuNow() - start;
  if (ok != n) {
    throw std::runtime_error("wire::parse rejected a generated part");
  }
  return ns / static_cast<double>(n);
}

// --- measurement ------------------------------------------------------------

// Osrd runs with --offload true (UDP GSO/GRO on); OsrdPlain is the same
// binary with --offload false, one datagram per message: the same-run
// baseline of what the offloads buy.
enum class Relay { Kernel, Osrd, OsrdPlain };
constexpr std::array kRelays{Relay::Kernel, Relay::Osrd, Relay::OsrdPlain};

const char *toString(Relay r) {
  switch (r) {
  case Relay::Kernel:
    return "kernel";
  case Relay::Osrd:
    return "osrd";
  case Relay::OsrdPlain:
    return "osrd-plain";
  }
  return "?";
}

constexpr std::uint16_t relayPort(Relay r) {
  return r == Relay::OsrdPlain ? kRelayPort + 1 : kRelayPort;
}

// One osrd relay process of the bench.
struct OsrdRelay {
  pid_t pid;
  std::string controlPath;
};

struct Snapshot {
  Clock::time_point at;
  std::uint64_t offered = 0;
  std::uint64_t lost = 0;
  std::uint64_t delivered = 0;
  std::uint64_t deliveredBytes = 0;
  std::uint64_t relayed = 0; // osrd: relayed − send drops; kernel: Ip ForwDatagrams
  std::uint64_t relaySocketDrops = 0;
  CpuTimes relayCpu;
  std::uint64_t osrdTicks = 0;
};

struct Sample {
  double offeredPps = 0;
  double relayedPps = 0;
  double deliveredPps = 0;
  double payloadGbps = 0;
  double wireGbps = 0;
  double relaySoftirq = 0;       // share of the relay core in softirq
  double osrdCpu = 0;            // share of the relay core in osrd (user + sys)
  double relaySocketDropsPs = 0; // datagrams/s dropped at osrd's full socket
  double lostPps = 0;            // Load::Window: datagrams/s given up as lost
  // Share of the relay core spent forwarding; other tasks on the shared
  // machine fill the rest. Tick accounting charges softirq that interrupts
  // osrd to both osrd and the core's softirq time, so the sum (capped at the
  // whole core) over-states the cost: an upper bound.
  [[nodiscard]] double relayCost() const { return std::min(1.0, relaySoftirq + osrdCpu); }
  // Packets per second one core would forward doing nothing else (a lower
  // bound, see relayCost).
  [[nodiscard]] double ppsPerCore() const {
    return relayCost() > 0 ? deliveredPps / relayCost() : 0;
  }
};

struct Bench {
  const Topology &topo;
  Sink &sink;
  std::map<Relay, OsrdRelay> osrds; // Osrd and OsrdPlain

  Snapshot snapshot(Relay relay, const Generator &gen) const {
    Snapshot s;
    s.at = Clock::now();
    s.offered = gen.sent();
    s.lost = gen.lost();
    s.delivered = sink.packets();
    s.deliveredBytes = sink.bytes();
    s.relayCpu = cpuTimes(kRelayCpu);
    if (relay != Relay::Kernel) {
      s.osrdTicks = processTicks(osrds.at(relay).pid);
    }
    const auto stats = snmp(topo.relay());
    s.relaySocketDrops = stats.count("Udp:RcvbufErrors") != 0 ? stats.at("Udp:RcvbufErrors") : 0;
    if (relay == Relay::Kernel) {
      s.relayed = stats.at("Ip:ForwDatagrams");
    } else {
      const auto c =
          control(osrds.at(relay).controlPath, {{"cmd", "status"}}).at("status").at("counters");
      s.relayed = c.at("relayed").get<std::uint64_t>() - c.at("send_drops").get<std::uint64_t>();
    }
    return s;
  }

  Sample run(Relay relay, Load load, std::size_t payload,
             const std::vector<std::vector<std::uint8_t>> &packets) const {
    const sockaddr_in to = relay == Relay::Kernel ? socketAddress(kSinkAddr, kSinkPort)
                                                  : socketAddress(kRelayGenAddr, relayPort(relay));
    const std::size_t window =
        load == Load::Blast ? 0 : (relay == Relay::Kernel ? kKernelWindow : kOsrdWindow);
    Generator gen(topo.gen(), packets, to, window, sink.packetCounter());
    nvbox::test::sleepFor(kWarmup);
    const Snapshot a = snapshot(relay, gen);
    nvbox::test::sleepFor(kMeasure);
    const Snapshot b = snapshot(relay, gen);
    gen.stop();
    nvbox::test::sleepFor(kDrain);
    const double secs = std::chrono::duration<double>(b.at - a.at).count();
    const auto rate = [&](std::uint64_t x, std::uint64_t y) {
      return static_cast<double>(y - x) / secs;
    };
    Sample r;
    r.offeredPps = rate(a.offered, b.offered);
    r.lostPps = rate(a.lost, b.lost);
    r.relayedPps = rate(a.relayed, b.relayed);
    r.deliveredPps = rate(a.delivered, b.delivered);
    const double datagram = static_cast<double>(osr::wire::packetSize(payload));
    r.payloadGbps = r.deliveredPps * static_cast<double>(payload) * 8 / 1e9;
    r.wireGbps = r.deliveredPps * (datagram + kFrameOverhead) * 8 / 1e9;
    const double ticks = static_cast<double>(b.relayCpu.total - a.relayCpu.total);
    if (ticks > 0) {
      r.relaySoftirq = static_cast<double>(b.relayCpu.softirq - a.relayCpu.softirq) / ticks;
      r.osrdCpu = static_cast<double>(b.osrdTicks - a.osrdTicks) / ticks;
    }
    r.relaySocketDropsPs = rate(a.relaySocketDrops, b.relaySocketDrops);
    if (r.deliveredPps <= 0) {
      throw std::runtime_error(std::string("nothing reached the sink through ") + toString(relay) +
                               " with " + std::to_string(payload) + "-byte parts");
    }
    return r;
  }
};

using nvbox::test::median;

Sample medianOf(const std::vector<Sample> &runs) {
  Sample s;
  for (double Sample::*f : {&Sample::offeredPps, &Sample::relayedPps, &Sample::deliveredPps,
                            &Sample::payloadGbps, &Sample::wireGbps, &Sample::relaySoftirq,
                            &Sample::osrdCpu, &Sample::relaySocketDropsPs, &Sample::lostPps}) {
    std::vector<double> v;
    for (const auto &r : runs) {
      v.push_back(r.*f);
    }
    s.*f = median(v);
  }
  return s;
}

// osrd/kernel ratios of a median row: delivered rate and rate per core.
struct Ratios {
  double delivered = 0;
  double perCore = 0;
};

void csvRow(std::ostream &out, Load load, Relay relay, std::size_t payload, const std::string &run,
            const Sample &s, const Ratios &ratios) {
  out << toString(load) << ',' << toString(relay) << ',' << payload << ','
      << osr::wire::packetSize(payload) << ',' << run << ',' << s.offeredPps << ',' << s.relayedPps
      << ',' << s.deliveredPps << ',' << s.payloadGbps << ',' << s.wireGbps << ',' << s.relaySoftirq
      << ',' << s.osrdCpu << ',' << s.ppsPerCore() << ',' << s.relaySocketDropsPs << ','
      << s.lostPps << ',';
  if (ratios.delivered > 0) {
    out << ratios.delivered << ',' << ratios.perCore;
  } else {
    out << ',';
  }
  out << '\n';
}

using Key = std::tuple<std::size_t, Load, Relay>;

void report(const std::map<Key, std::vector<Sample>> &samples,
            const std::vector<std::size_t> &sizes, std::ostream &csv) {
  csv << "load,forwarder,part_bytes,datagram_bytes,run,offered_pps,relayed_pps,delivered_pps,"
         "payload_gbps,wire_gbps,relay_core_softirq,relay_core_osrd,pps_per_core,"
         "relay_socket_drops_ps,window_lost_pps,osrd_over_kernel,osrd_over_kernel_per_core\n";
  const char *format = "%-5s %-6s %-10s %7s %7s %9s %7s %7s %7s %5s %6s %8s %13s\n";
  std::printf(format, "part", "load", "relay", "offered", "relayed", "delivered", "payload",
              "on-wire", "softirq", "osrd", "cost", "per core", "osrd/kernel");
  std::printf(format, "bytes", "", "", "Mpps", "Mpps", "Mpps", "Gbit/s", "Gbit/s", "", "", "us/pkt",
              "Mpps", "(per core)");
  for (const auto size : sizes) {
    for (const Load load : {Load::Window, Load::Blast}) {
      const Sample kernel = medianOf(samples.at({size, load, Relay::Kernel}));
      for (const Relay relay : kRelays) {
        const auto &runs = samples.at({size, load, relay});
        for (std::size_t i = 0; i < runs.size(); ++i) {
          csvRow(csv, load, relay, size, std::to_string(i + 1), runs[i], {});
        }
        const Sample m = medianOf(runs);
        Ratios ratios;
        char ratioText[32] = "";
        if (relay != Relay::Kernel) {
          ratios = {m.deliveredPps / kernel.deliveredPps, m.ppsPerCore() / kernel.ppsPerCore()};
          std::snprintf(ratioText, sizeof ratioText, "%.2f (%.2f)", ratios.delivered,
                        ratios.perCore);
        }
        csvRow(csv, load, relay, size, "median", m, ratios);
        const double usPerPacket = m.deliveredPps > 0 ? m.relayCost() / m.deliveredPps * 1e6 : 0;
        std::printf("%-5zu %-6s %-10s %7.3f %7.3f %9.3f %7.2f %7.2f %6.0f%% %4.0f%% %6.2f %8.3f "
                    "%13s\n",
                    size, toString(load), toString(relay), m.offeredPps / 1e6, m.relayedPps / 1e6,
                    m.deliveredPps / 1e6, m.payloadGbps, m.wireGbps, m.relaySoftirq * 100,
                    m.osrdCpu * 100, usPerPacket, m.ppsPerCore() / 1e6, ratioText);
      }
    }
  }
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir(argc > 1 ? argv[1] : "bench");
  const std::filesystem::path csvPath = dir / "relay_forwarding.csv";
  nvbox::test::catchTermination();
  const auto controlPath = [](Relay r) {
    return "/tmp/" + nsName(std::string("fw") + toString(r)) + ".sock";
  };
  try {
    if (std::thread::hardware_concurrency() < 2) {
      throw std::runtime_error("needs two CPUs (load on CPU 0, relay on CPU 1)");
    }
    osr::PacketAuthenticator auth(osr::OverlayKey::fromHex(kKeyHex).value());
    const std::vector<std::size_t> sizes{64, 1400};
    std::map<std::size_t, std::vector<std::vector<std::uint8_t>>> parts;
    std::map<std::size_t, double> parseNs;
    for (const auto size : sizes) {
      parts[size] = encodeParts(size, auth);
      parseNs[size] = parseNanos(parts[size], auth);
    }

    const SessionBoost boost;
    const Topology topo;
    // Both relays on the relay core; only the one being measured has traffic.
    std::vector<nvbox::test::Child> osrds;
    std::map<Relay, OsrdRelay> relays;
    for (const Relay relay : {Relay::Osrd, Relay::OsrdPlain}) {
      const std::string listen =
          std::string(kRelayGenAddr) + ":" + std::to_string(relayPort(relay));
      const std::string tun = relay == Relay::Osrd ? "osr0" : "osr1";
      const std::string offload = relay == Relay::Osrd ? "true" : "false";
      osrds.push_back(nvbox::test::spawnIn(
          topo.relay(), {"/usr/bin/nice", "-n", std::to_string(kNice), "/usr/bin/taskset", "-c",
                         std::to_string(kRelayCpu), nvbox::test::builtBinary("osrd"), "--name",
                         toString(relay), "--key", kKeyHex, "--listen", listen, "--tun", tun,
                         "--offload", offload, "--control", controlPath(relay)}));
      bool up = false;
      for (int i = 0; i < 300 && !up && osrds.back().running(); ++i) {
        up = ::access(controlPath(relay).c_str(), F_OK) == 0;
        nvbox::test::sleepFor(10ms);
      }
      if (!up) {
        throw std::runtime_error("osrd did not start:\n" + osrds.back().output());
      }
      relays[relay] = OsrdRelay{osrds.back().pid(), controlPath(relay)};
    }
    Sink sink(topo.sink());
    const Bench bench{topo, sink, relays};

    // Interleaved, so that a noisy second on the shared machine does not
    // land on one configuration only.
    std::map<Key, std::vector<Sample>> samples;
    for (const auto size : sizes) {
      for (int run = 0; run < kRuns; ++run) {
        for (const Load load : {Load::Window, Load::Blast}) {
          for (const Relay relay : kRelays) {
            samples[{size, load, relay}].push_back(bench.run(relay, load, size, parts[size]));
            for (const auto &osrd : osrds) {
              if (!osrd.running()) {
                throw std::runtime_error("osrd died:\n" + osrd.output());
              }
            }
          }
        }
      }
    }
    std::map<Relay, nlohmann::json> counters;
    for (const auto &[relay, osrd] : relays) {
      counters[relay] = control(osrd.controlPath, {{"cmd", "status"}}).at("status").at("counters");
    }
    sink.stop();

    std::filesystem::create_directories(dir);
    std::ofstream csv(csvPath);
    std::printf("relay forwarding: relay on CPU %d (osrd pinned, RPS%s), generator and sink on "
                "CPU %d, unshaped veth, nice %d%s; %d runs x %.1f s, medians\n",
                kRelayCpu, topo.steered() ? "" : " UNAVAILABLE: relay softirq on CPU 0", kLoadCpu,
                kNice, boost.active() ? " (session too)" : "", kRuns,
                std::chrono::duration<double>(kMeasure).count());
    report(samples, sizes, csv);
    std::printf("softirq, osrd: shares of the relay core; cost: relay-core time per delivered "
                "datagram (an upper bound: softirq\ninterrupting osrd is counted in both); per "
                "core: delivered / relay-core share (a lower bound)\n");
    std::printf("wire::parse (tag verify), CPU time: %.0f ns/part at %zu B, %.0f "
                "ns/part at %zu B\n",
                parseNs[64], osr::wire::packetSize(64), parseNs[1400], osr::wire::packetSize(1400));
    for (const auto &[relay, c] : counters) {
      const auto count = [&c](const char *name) {
        return static_cast<unsigned long long>(c.at(name).get<std::uint64_t>());
      };
      std::printf("%s counters at the end: rx %llu, relayed %llu, send_drops %llu, GSO messages "
                  "%llu carrying %llu datagrams\n",
                  toString(relay), count("rx"), count("relayed"), count("send_drops"),
                  count("gso_messages"), count("gso_datagrams"));
    }
    for (const auto size : sizes) {
      const double with = medianOf(samples.at({size, Load::Window, Relay::Osrd})).deliveredPps;
      const double without =
          medianOf(samples.at({size, Load::Window, Relay::OsrdPlain})).deliveredPps;
      std::printf("offloads (UDP GSO) at %zu-byte parts, window: osrd %.3f Mpps, osrd-plain %.3f "
                  "Mpps (%.2fx)\n",
                  size, with / 1e6, without / 1e6, without > 0 ? with / without : 0.0);
    }
    const Sample small = medianOf(samples.at({sizes.front(), Load::Window, Relay::Osrd}));
    std::printf("goal >= 1 Mpps per core on 64-byte parts: osrd %.3f Mpps delivered, %.3f Mpps "
                "per core -> %s\n",
                small.deliveredPps / 1e6, small.ppsPerCore() / 1e6,
                std::max(small.deliveredPps, small.ppsPerCore()) >= kGoalPps ? "met" : "NOT met");
    std::printf("csv: %s\n", csvPath.c_str());
    if (!csv.flush()) {
      throw std::runtime_error("cannot write " + csvPath.string());
    }
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "relay_forwarding_bench: error: " << e.what() << "\n";
    for (const Relay relay : {Relay::Osrd, Relay::OsrdPlain}) {
      ::unlink(controlPath(relay).c_str());
    }
    return 1;
  }
}

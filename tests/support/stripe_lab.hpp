// StripeLab — one osrd stripe over k tbf-shaped paths in network namespaces,
// with Linux MPTCP over the very same paths as the baseline:
//
//   src ─ ing ═ r1..rk ═ egr ─ sink
//
// osrd runs on ing (stripe `fwd` to the sink's prefix), on egr (stripe `back`,
// for the ACKs) and on every relay; MPTCP's subflow i leaves src from its own
// address and is policy-routed through relay i, where the kernel forwards it.
// The ing→ri and egr→ri veths are shaped with tbf. Shared by aggregation_bench
// and the osrd integration tests that compare goodput, so that both measure the
// same lab. Everything goes with the object: daemons first, then namespaces.
//
// Threading: a StripeLab is used from one thread, except control(), which
// only reaches a daemon's control socket, and reshape(), cut() and restore(),
// which only touch the kernel: an ActionSchedule may call them while a
// transfer runs.
#pragma once

#include "lab.hpp"
#include "transfer.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace nvbox::osr {
class TunDevice;
}

namespace nvbox::test {

struct StripeScenario {
  std::string name{};
  std::vector<std::uint64_t> mbit{}; // tbf rate per path
  std::vector<unsigned> delayMs{};   // relay delay per path; missing: 0
  // The stripes' scheduler= field; empty: omitted, so osrd's default applies.
  std::string scheduler{};
  // rates= (the tbf rates) in the stripe specs; false: omitted, osrd is told
  // nothing about the paths.
  bool declareRates = false;
  bool playout = true; // false: every osrd runs with --playout false
  [[nodiscard]] double sumMbit() const;
};

// A userspace delay stage for what a relay forwards in the kernel (the host
// has no netem), so that MPTCP's packets are delayed by the same amount and at
// the same place as osrd's --relay-delay: packets arriving from either veth
// for the lab's end prefixes are policy-routed (table 200) into the TUN device
// dly0; a thread holds each for `delay` and writes it back, and the kernel,
// seeing it arrive on dly0, forwards it by the main table. osrd's own tunnel
// datagrams are addressed to the relay and never enter it.
class KernelPathDelay {
public:
  KernelPathDelay(const std::string &ns, std::chrono::milliseconds delay);
  ~KernelPathDelay();
  KernelPathDelay(const KernelPathDelay &) = delete;
  KernelPathDelay &operator=(const KernelPathDelay &) = delete;

  // Packets delayed so far: evidence that the baseline's subflows took it.
  [[nodiscard]] std::uint64_t held() const { return held_.load(); }
  [[nodiscard]] std::chrono::milliseconds delay() const { return delay_; }

private:
  void run();

  std::chrono::milliseconds delay_;
  std::unique_ptr<osr::TunDevice> tun_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> held_{0};
  std::thread thread_;
};

class StripeLab {
public:
  // Builds the lab and returns once both ends have all k paths up. Throws
  // std::runtime_error (what did not come up, with the daemons' output).
  explicit StripeLab(const StripeScenario &s);
  ~StripeLab();
  StripeLab(const StripeLab &) = delete;
  StripeLab &operator=(const StripeLab &) = delete;

  [[nodiscard]] const StripeScenario &scenario() const { return s_; }

  // A transfer src → sink through the stripe, or (mptcp) over one MPTCP
  // connection whose subflows take the same paths; a fresh port every time.
  TransferOptions transferOptions(bool mptcp);
  // Runs it and throws unless what arrived is what was sent (byte count and
  // SHA-256; with no duration, exactly o.bytes). Returns {sent, received}.
  std::pair<Transfer, Transfer> checkedTransfer(const TransferOptions &o);
  // Mbit/s of one checked transfer of `bytes`, or of a stream for `duration`.
  double goodput(bool mptcp, std::size_t bytes, std::chrono::milliseconds duration = {});

  // Path i's (0-based) tbf rate in both directions (ing's and egr's
  // v-r<i+1>), changed in place, burst and queue computed for the new rate.
  void reshape(std::size_t path, double mbit);
  // Cuts path i silently: relay i's link towards the egress goes down inside
  // the relay, so what the ingress sends it is dropped there (the ingress's
  // own sends succeed) and nothing comes back. restore() brings the link up
  // and puts back the routes the kernel removed with it.
  void cut(std::size_t path);
  void restore(std::size_t path);

  // Returns once both ends have every path in their stripe (k = paths);
  // throws std::runtime_error after 6 s, with the daemons' output.
  void waitForAllPaths() const;

  // One request to the control socket of daemon "ing", "egr" or "r<i>".
  [[nodiscard]] nlohmann::json control(const std::string &daemon,
                                       const nlohmann::json &request) const;
  // The egress's status of the forward flow.
  nlohmann::json egressFlow() const;
  // The egress's N for every flow; nullopt: sized automatically again.
  void setBuffer(std::optional<std::size_t> n);

  // "relay 5 ms: 1234 packets, …" for the relays that delay kernel-forwarded
  // packets; empty without delays.
  [[nodiscard]] std::string kernelDelays() const;
  // Everything the daemons wrote so far, for failure messages.
  [[nodiscard]] std::string outputs() const;

private:
  [[nodiscard]] std::string sock(const std::string &name) const;
  void start(const std::string &ns, const std::string &name, const std::string &listen,
             std::vector<std::string> extra);
  void relayRoutes(std::size_t path);

  StripeScenario s_;
  NetLab lab_;
  std::string src_, ing_, egr_, sink_;
  std::vector<std::string> relays_;
  std::vector<std::unique_ptr<KernelPathDelay>> delays_; // declared after lab_: gone before it
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Child>> daemons_;
  int port_ = 0;
};

// Runs actions at fixed offsets from a start time on a thread of its own: how
// an experiment changes the network in the middle of a transfer at a precise
// moment (transfer() blocks its caller). Destruction cancels what has not run
// yet and joins, so an exception in the caller never leaves it running.
class ActionSchedule {
public:
  using Clock = std::chrono::steady_clock;
  struct Action {
    Clock::duration at; // after start
    std::function<void()> run;
  };

  ActionSchedule(Clock::time_point start, std::vector<Action> actions);
  ~ActionSchedule();
  ActionSchedule(const ActionSchedule &) = delete;
  ActionSchedule &operator=(const ActionSchedule &) = delete;

  // When an action began and ended, from start. Experiments count from
  // `began`: a link set down is down early in the command, which returns only
  // after the kernel's grace periods (`ended` can be 10 ms later).
  struct Done {
    Clock::duration began;
    Clock::duration ended;
  };
  // Waits for the remaining actions, then rethrows the first one's exception.
  std::vector<Done> finish();

private:
  std::vector<Done> done_;
  std::exception_ptr error_;
  std::jthread thread_; // last: stopped and joined before the rest goes
};

// Receiver timelines (Transfer::timeline, steady_clock): the bytes arrived by
// `t`, linearly interpolated between samples (0 before the first, the total
// after the last).
double bytesAt(const Transfer &received, std::chrono::steady_clock::time_point t);
// Mbit/s that arrived between `from` and `to`.
double goodputBetween(const Transfer &received, std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to);
struct Stall {
  std::chrono::steady_clock::duration length{};
  std::chrono::steady_clock::time_point start{};
};
// The longest interval between consecutive samples that overlaps [from, to]:
// no byte arrived in it, within one sampling period.
Stall longestStall(const Transfer &received, std::chrono::steady_clock::time_point from,
                   std::chrono::steady_clock::time_point to);

} // namespace nvbox::test

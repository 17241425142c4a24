#include "nvbox/overlay_run.hpp"

#include "links/link_control.hpp"
#include "overlay_hosts.hpp"
#include "stripe_route.hpp"

#include "nvbox/error.hpp"
#include "nvbox/router.hpp"

#include <algorithm>
#include <ctime>
#include <future>
#include <set>
#include <sstream>
#include <thread>

namespace nvbox {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start, Clock::time_point t) {
  return std::chrono::duration<double>(t - start).count();
}

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string describeChange(const TopologyEvent &e) {
  std::vector<std::string> parts;
  if (e.up) {
    parts.emplace_back(*e.up ? "up" : "down");
  }
  if (e.shape.rateBps) {
    parts.push_back("rate " + number(static_cast<double>(*e.shape.rateBps) / 1e6) + " Mbit/s");
  }
  if (e.shape.delayUs) {
    parts.push_back("delay " + number(*e.shape.delayUs / 1000.0) + " ms");
  }
  if (e.shape.jitterUs) {
    parts.push_back("jitter " + number(*e.shape.jitterUs / 1000.0) + " ms");
  }
  if (e.shape.lossPercent) {
    parts.push_back("loss " + number(*e.shape.lossPercent) + " %");
  }
  std::string out;
  for (const auto &p : parts) {
    out += (out.empty() ? "" : ", ") + p;
  }
  return out;
}

bool setsShape(const LinkShape &s) {
  return s.rateBps || s.delayUs || s.jitterUs || s.lossPercent;
}

// `current` with the fields `change` sets replaced.
LinkShape merged(LinkShape current, const LinkShape &change) {
  if (change.rateBps) {
    current.rateBps = change.rateBps;
  }
  if (change.delayUs) {
    current.delayUs = change.delayUs;
  }
  if (change.jitterUs) {
    current.jitterUs = change.jitterUs;
  }
  if (change.lossPercent) {
    current.lossPercent = change.lossPercent;
  }
  return current;
}

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// One look at the ingress osrd's stripe.
struct Poll {
  double at = 0;
  std::map<std::string, std::uint64_t> bytes; // by relay name
  std::map<std::string, bool> up;
};

Poll pollStripe(OsrdClient &in, const StripeRoute &route, Clock::time_point t0) {
  const auto asked = Clock::now();
  const nlohmann::json stripe = in.stripe(route.osrdStripe); // outlives the loop
  Poll p;
  // osrd read its counters somewhere within the request, which crosses the
  // agent and a busy guest: the middle errs least either way.
  p.at = (since(t0, asked) + since(t0, Clock::now())) / 2;
  for (const auto &path : stripe["paths"]) {
    const std::string relay = route.nameOf(path.value("relay", ""));
    p.bytes[relay] = path.value("bytes", std::uint64_t{0});
    p.up[relay] = path.value("up", false);
  }
  return p;
}

// The routers of the plan as they run: throws when one is missing, not the
// planned one, or not running.
std::map<std::string, RouterInfo>
deployedRouters(const OverlayPlan &plan, const std::map<std::string, virt::Connection> &conns) {
  std::map<std::string, RouterInfo> found;
  for (const auto &[name, host] : plan.hosts) {
    for (auto &info : RouterManager(conns.at(name), HostRef{name, host.uri}).list()) {
      if (info.metadata.overlay == plan.overlay) {
        found.emplace(info.name, std::move(info));
      }
    }
  }
  for (const auto &r : plan.routers) {
    const auto it = found.find(r.name);
    std::string why;
    if (it == found.end()) {
      why = "router '" + r.name + "' is missing";
    } else if (it->second.metadata.spec != r.digest) {
      why = "router '" + r.name + "' is not the planned one";
    } else if (it->second.state != RouterState::Running) {
      why = "router '" + r.name + "' is " + toString(it->second.state);
    }
    if (!why.empty()) {
      throw UsageError("overlay '" + plan.overlay + "' does not run as planned: " + why,
                       "deploy it first ('nvbox deploy FILE')");
    }
  }
  return found;
}

// Bytes the receiver had at `t` (the last sample at or before it).
std::uint64_t receivedAt(const std::vector<std::pair<double, std::uint64_t>> &timeline, double t) {
  std::uint64_t bytes = 0;
  for (const auto &[at, b] : timeline) {
    if (at > t) {
      break;
    }
    bytes = b;
  }
  return bytes;
}

// The last poll at or before `t` (the first one when none is).
const Poll &pollAt(const std::vector<Poll> &polls, double t) {
  const Poll *best = &polls.front();
  for (const auto &p : polls) {
    if (p.at > t) {
      break;
    }
    best = &p;
  }
  return *best;
}

void analyse(OverlayRunReport &report,
             const std::vector<std::pair<double, std::uint64_t>> &timeline,
             const std::vector<Poll> &polls, double end) {
  for (std::size_t i = 1; i < polls.size(); ++i) {
    const Poll &a = polls[i - 1];
    const Poll &b = polls[i];
    for (const auto &[relay, bytes] : b.bytes) {
      const auto before = a.bytes.find(relay);
      if (before != a.bytes.end() && b.at > a.at) {
        // A path removed and added again counts from 0.
        report.pathRates[relay].emplace_back(
            b.at, static_cast<double>(bytes - std::min(bytes, before->second)) / (b.at - a.at));
      }
    }
  }
  for (std::size_t i = 1; i < timeline.size(); ++i) {
    const double dt = timeline[i].first - timeline[i - 1].first;
    if (dt > 0) {
      report.goodput.emplace_back(timeline[i].first,
                                  static_cast<double>(timeline[i].second - timeline[i - 1].second) *
                                      8 / dt / 1e6);
    }
  }
  // Path changes as the polls saw them, each given to the event before it.
  std::map<std::string, bool> was = polls.empty() ? std::map<std::string, bool>{} : polls[0].up;
  for (const auto &p : polls) {
    for (const auto &[relay, up] : p.up) {
      if (was.contains(relay) && was[relay] != up) {
        for (auto e = report.events.rbegin(); e != report.events.rend(); ++e) {
          if (e->applied <= p.at) {
            e->paths.push_back({p.at - e->applied, relay, up});
            break;
          }
        }
      }
      was[relay] = up;
    }
  }
  std::vector<double> bounds{0};
  for (const auto &e : report.events) {
    bounds.push_back(e.applied);
  }
  bounds.push_back(end);
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    RunWindow w;
    w.label = i == 0 ? "before"
                     : "after t=" + number(static_cast<double>(report.events[i - 1].atMs) / 1000) +
                           "s " + report.events[i - 1].link + " " + report.events[i - 1].change;
    w.from = bounds[i];
    w.to = bounds[i + 1];
    const double span = w.to - w.from;
    if (span <= 0) {
      continue;
    }
    w.mbps = static_cast<double>(receivedAt(timeline, w.to) - receivedAt(timeline, w.from)) * 8 /
             span / 1e6;
    if (!polls.empty()) {
      const Poll &a = pollAt(polls, w.from);
      const Poll &b = pollAt(polls, w.to);
      for (const auto &[relay, bytes] : b.bytes) {
        const std::uint64_t before = a.bytes.contains(relay) ? a.bytes.at(relay) : 0;
        w.pathMbps[relay] = b.at > a.at ? static_cast<double>(bytes - std::min(bytes, before)) * 8 /
                                              (b.at - a.at) / 1e6
                                        : 0;
      }
    }
    report.windows.push_back(std::move(w));
  }
  // The longest the stream got nothing after each event, until the next.
  for (std::size_t i = 0; i < report.events.size(); ++i) {
    RunEvent &e = report.events[i];
    const double until = i + 1 < report.events.size() ? report.events[i + 1].applied : end;
    double last = e.applied;
    for (const auto &[at, bytes] : timeline) {
      if (at <= e.applied) {
        continue;
      }
      if (at > until) {
        break;
      }
      e.stall = std::max(e.stall, at - last);
      last = at;
    }
    e.stall = std::max(e.stall, until - last);
  }
}

} // namespace

nlohmann::json OverlayRunReport::summary() const {
  nlohmann::json j = {{"overlay", overlay},
                      {"stripe", stripe},
                      {"from", from},
                      {"to", to},
                      {"started", started},
                      {"seconds", seconds},
                      {"bytes", bytes},
                      {"identical", identical},
                      {"mbps", mbps},
                      {"events", nlohmann::json::array()},
                      {"windows", nlohmann::json::array()}};
  for (const auto &e : events) {
    nlohmann::json paths = nlohmann::json::array();
    for (const auto &p : e.paths) {
      paths.push_back({{"relay", p.relay}, {"up", p.up}, {"after_s", p.at}});
    }
    j["events"].push_back({{"at_ms", e.atMs},
                           {"link", e.link},
                           {"change", e.change},
                           {"applied_s", e.applied},
                           {"apply_took_s", e.applyTook},
                           {"paths", paths},
                           {"stall_s", e.stall}});
  }
  for (const auto &w : windows) {
    j["windows"].push_back({{"label", w.label},
                            {"from_s", w.from},
                            {"to_s", w.to},
                            {"mbps", w.mbps},
                            {"paths_mbps", w.pathMbps}});
  }
  return j;
}

nlohmann::json OverlayRunReport::toJson() const {
  nlohmann::json j = summary();
  j["goodput"] = nlohmann::json::array();
  for (const auto &[at, mbit] : goodput) {
    j["goodput"].push_back({at, mbit});
  }
  j["path_rates"] = nlohmann::json::object();
  for (const auto &[relay, series] : pathRates) {
    auto &points = j["path_rates"][relay] = nlohmann::json::array();
    for (const auto &[at, rate] : series) {
      points.push_back({at, rate});
    }
  }
  return j;
}

OverlayRunReport runOverlay(const OverlayPlan &plan, const RunOptions &options,
                            const OverlayLog &log) {
  if (plan.events.empty()) {
    throw UsageError("overlay '" + plan.overlay + "' schedules no link events",
                     "add some under 'events' in the topology (docs/topology.md)");
  }
  if (plan.stripes.empty()) {
    throw UsageError("overlay '" + plan.overlay + "' has no stripe to run a stream through",
                     "add one under 'stripes' in the topology");
  }
  const auto conns = connectAll(plan, "run");
  auto nets = networksOf(plan);
  const auto routers = deployedRouters(plan, conns);

  OverlayRunReport report;
  report.overlay = plan.overlay;
  report.from = options.from;
  report.to = options.to;
  const PlannedStripe &first = plan.stripes.front();
  for (const auto &ep : plan.endpoints) {
    if (report.from.empty() && ep.router == first.ingress) {
      report.from = ep.name;
    }
    if (report.to.empty() && ep.router == first.egress) {
      report.to = ep.name;
    }
  }
  if (report.from.empty() || report.to.empty()) {
    throw UsageError("stripe '" + first.name + "' has no endpoint at its " +
                         (report.from.empty() ? "ingress '" + first.ingress + "'"
                                              : "egress '" + first.egress + "'"),
                     "add one under 'endpoints', or give --from and --to");
  }
  const nlohmann::json planJson = plan.toJson();
  const StripeRoute route = resolveStripeRoute(planJson, report.from, report.to);
  report.stripe = route.stripe.value("name", "");
  OsrdClient in(planJson, route.ingress);
  in.waitCarrying(route, log);

  const auto length = std::chrono::milliseconds(plan.events.back().atMs) + options.tail;
  netconfig::TransferOptions t = route.transfer;
  t.bytes = 0;
  t.duration = length;
  t.sampleEvery = options.sample;
  t.timeout = std::chrono::seconds(30); // a link down must not end the stream

  links::LinkControl control(plan, conns, nets);
  std::map<std::string, LinkShape> shaped; // links an event shaped: their shape now
  std::set<std::string> switched;          // links an event set down or up
  const auto restore = [&] {
    for (const auto &[name, shape] : shaped) {
      try {
        control.shape(*plan.link(name), plan.link(name)->shape);
      } catch (const std::exception &e) {
        log("cannot put link '" + name + "' back as planned: " + e.what());
      }
    }
    for (const auto &name : switched) {
      try {
        control.setState(*plan.link(name), true);
      } catch (const std::exception &e) {
        log("cannot bring link '" + name + "' back up: " + e.what());
      }
    }
  };

  log("a " + number(static_cast<double>(length.count()) / 1000) + " s TCP stream from '" +
      report.from + "' to '" + report.to + "' over stripe '" + report.stripe + "', " +
      std::to_string(plan.events.size()) + " events");
  report.started = utcNow();
  const auto t0 = Clock::now();
  auto stream = std::async(std::launch::async, [&t] { return netconfig::transfer(t); });
  std::vector<Poll> polls;
  std::pair<netconfig::Transfer, netconfig::Transfer> result;
  try {
    std::size_t next = 0;
    auto nextPoll = t0; // on a steady beat, so that the per-path rates come evenly
    while (stream.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      const auto due = next < plan.events.size()
                           ? t0 + std::chrono::milliseconds(plan.events[next].atMs)
                           : Clock::time_point::max();
      if (Clock::now() >= due) {
        const TopologyEvent &e = plan.events[next++];
        const PlannedLink &link = *plan.link(e.link);
        RunEvent re{e.atMs, e.link, describeChange(e), since(t0, Clock::now()), 0, {}, 0};
        if (setsShape(e.shape)) {
          auto &now = shaped.try_emplace(link.name, link.shape).first->second;
          now = merged(now, e.shape);
          control.shape(link, now);
        }
        if (e.up) {
          switched.insert(link.name);
          control.setState(link, *e.up);
        }
        re.applyTook = since(t0, Clock::now()) - re.applied;
        log("t=" + number(re.applied) + " s: link '" + e.link + "' " + re.change + " (took " +
            number(re.applyTook) + " s)");
        report.events.push_back(std::move(re));
        continue;
      }
      if (Clock::now() >= nextPoll) {
        polls.push_back(pollStripe(in, route, t0));
        // A slow answer (a busy guest) gets a pause before the next request
        // rather than requests back to back.
        nextPoll = std::max(nextPoll + options.poll, Clock::now() + options.poll / 2);
      }
      std::this_thread::sleep_until(std::min(due, nextPoll));
    }
    result = stream.get();
  } catch (...) {
    if (stream.valid()) {
      stream.wait();
    }
    restore();
    throw;
  }
  restore();

  const auto &[sent, got] = result;
  report.bytes = got.bytes;
  report.identical = sent.bytes == got.bytes && sent.digest == got.digest;
  report.seconds = got.seconds;
  report.mbps = got.seconds > 0 ? got.mbps() : 0;
  std::vector<std::pair<double, std::uint64_t>> timeline;
  for (const auto &[at, bytes] : got.timeline) {
    timeline.emplace_back(since(t0, at), bytes);
  }
  const double end = timeline.empty() ? since(t0, Clock::now()) : timeline.back().first;
  analyse(report, timeline, polls, end);

  // The ingress keeps the summary, for inspect.
  const PlannedRouter &ingress = *plan.router(route.ingress);
  RouterMetadata m = routers.at(ingress.name).metadata;
  m.run = report.summary().dump();
  RouterManager(conns.at(ingress.host), HostRef{ingress.host, plan.hosts.at(ingress.host).uri})
      .setMetadata(ingress.name, m);
  return report;
}

} // namespace nvbox

#include "oracle_signaling.hpp"

#include <algorithm>
#include <limits>

namespace nvbox::osr {
namespace {

// The aggregate metric of a relay set, for comparing answers: lower is
// better (the mean delay, or the negated summed rate). A relay the answer
// does not list makes the set as bad as it gets.
double metric(oracle::Objective objective, const oracle::Answer &a,
              const std::vector<Endpoint> &relays) {
  if (relays.empty()) {
    return std::numeric_limits<double>::infinity();
  }
  double sum = 0;
  for (const auto &r : relays) {
    const oracle::AnswerRelay *found = nullptr;
    for (std::size_t i = 0; i < a.count; ++i) {
      if (a.relays[i].relay == r) {
        found = &a.relays[i];
      }
    }
    if (found == nullptr) {
      return std::numeric_limits<double>::infinity();
    }
    sum += objective == oracle::Objective::Rate ? -static_cast<double>(found->rate)
                                                : static_cast<double>(found->delay_us);
  }
  return objective == oracle::Objective::Rate ? sum : sum / static_cast<double>(relays.size());
}

bool better(oracle::Objective objective, double now, double candidate, double threshold) {
  if (now == std::numeric_limits<double>::infinity()) {
    return candidate < now;
  }
  if (objective == oracle::Objective::Rate) { // negated sums
    return -candidate > -now * (1 + threshold);
  }
  return candidate < now * (1 - threshold);
}

nlohmann::json answerJson(const oracle::Answer &a) {
  nlohmann::json relays = nlohmann::json::array();
  for (std::size_t i = 0; i < a.count; ++i) {
    const auto &r = a.relays[i];
    relays.push_back({{"relay", r.relay.toString()},
                      {"delay_us", r.delay_us},
                      {"rate", r.rate},
                      {"beats_direct", r.beats_direct}});
  }
  return relays;
}

} // namespace

OracleSignaling::OracleSignaling(const OverlayKey &key, const Config &config, UdpSocket &socket,
                                 Ingress &ingress, const std::vector<StripeSpec> &stripes)
    : key_(key), config_(config), socket_(socket), ingress_(ingress) {
  for (const auto &spec : stripes) {
    if (spec.fromOracle) {
      stripes_.emplace_back();
      stripes_.back().spec = spec;
    }
  }
}

void OracleSignaling::flush() noexcept {
  if (tx_->size() != 0) {
    socket_.send(*tx_);
  }
}

bool OracleSignaling::isExcluded(const Stripe &s, const Endpoint &relay) const {
  return std::any_of(s.excluded.begin(), s.excluded.end(),
                     [&](const auto &e) { return e.first == relay; });
}

void OracleSignaling::exclude(Stripe &s, const Endpoint &relay, Nanos now) {
  if (!isExcluded(s, relay)) {
    s.excluded.emplace_back(relay, now + config_.exclude);
  }
}

void OracleSignaling::sendQuery(Stripe &s, Nanos now, Nanos wall) {
  if (tx_->full()) {
    flush();
  }
  lastWall_ = std::max(wall.count(), lastWall_ + 1);
  const std::uint64_t nonce = oracle::randomNonce();
  const oracle::Header h{.type = oracle::MessageType::Query,
                         .sender = config_.self,
                         .nonce = nonce,
                         .timestamp_ns = lastWall_};
  const auto k = std::min<std::size_t>(kMaxK, s.spec.k + 4 + s.excluded.size());
  const oracle::Query q{.src = config_.self,
                        .dst = s.spec.egress,
                        .k = static_cast<std::uint8_t>(k),
                        .objective = s.spec.objective};
  const std::size_t n = oracle::encodeQuery(h, q, key_, tx_->slot());
  if (n == 0) {
    return;
  }
  tx_->commit(n, config_.oracle);
  s.queryNonce = nonce;
  s.querySent = now;
  s.lastQuery = now;
  s.queryNow = false;
  ++s.queries;
}

void OracleSignaling::sendHello(Stripe &s, const Endpoint &relay, std::uint64_t rate, Nanos now,
                                Nanos wall) {
  if (tx_->full()) {
    flush();
  }
  lastWall_ = std::max(wall.count(), lastWall_ + 1);
  const std::uint64_t nonce = oracle::randomNonce();
  const oracle::Header h{.type = oracle::MessageType::Hello,
                         .sender = config_.self,
                         .nonce = nonce,
                         .timestamp_ns = lastWall_};
  const std::size_t n = oracle::encodeHello(h, oracle::Hello{.peer = relay}, key_, tx_->slot());
  if (n == 0) {
    return;
  }
  tx_->commit(n, relay);
  s.hellos.push_back(Hello{relay, nonce, now, rate});
  ++s.hellosSent;
}

void OracleSignaling::onAnswer(Stripe &s, const oracle::Answer &a, Nanos now, Nanos wall) {
  ++s.answers;
  s.queryNonce.reset();
  if (a.status != oracle::AnswerStatus::Ok) {
    s.lastError = a.status == oracle::AnswerStatus::UnknownSource
                      ? "the oracle has no fresh report from this router"
                      : "the oracle does not know the egress";
    return;
  }
  s.lastError.clear();
  s.lastAnswer = answerJson(a);
  std::vector<Endpoint> ranked;
  for (std::size_t i = 0; i < a.count && i < s.spec.k; ++i) {
    ranked.push_back(a.relays[i].relay);
  }
  const bool same = ranked.size() == s.ranked.size() &&
                    std::is_permutation(ranked.begin(), ranked.end(), s.ranked.begin());
  s.sameRanked = same ? s.sameRanked + 1 : 1;
  s.ranked = std::move(ranked);
  std::vector<const oracle::AnswerRelay *> candidates;
  for (std::size_t i = 0; i < a.count; ++i) {
    if (!isExcluded(s, a.relays[i].relay)) {
      candidates.push_back(&a.relays[i]);
    }
  }
  std::vector<Endpoint> current;
  for (const auto &p : s.paths) {
    if (!p.retiring) {
      current.push_back(p.relay);
    }
  }
  for (const auto &h : s.hellos) {
    current.push_back(h.relay);
  }
  const auto inCurrent = [&](const Endpoint &r) {
    return std::find(current.begin(), current.end(), r) != current.end();
  };
  const std::size_t k = s.spec.k;
  if (current.size() < k) {
    // Fill up: the best candidates not in use yet.
    for (const auto *c : candidates) {
      if (current.size() >= k) {
        break;
      }
      if (!inCurrent(c->relay)) {
        sendHello(s, c->relay, c->rate, now, wall);
        current.push_back(c->relay);
      }
    }
    return;
  }
  std::vector<Endpoint> desired;
  for (std::size_t i = 0; i < candidates.size() && i < k; ++i) {
    desired.push_back(candidates[i]->relay);
  }
  const double have = metric(s.spec.objective, a, current);
  const double could = metric(s.spec.objective, a, desired);
  if (desired.size() < k || !better(s.spec.objective, have, could, config_.threshold)) {
    return;
  }
  ++s.restripes;
  const auto inDesired = [&](const Endpoint &r) {
    return std::find(desired.begin(), desired.end(), r) != desired.end();
  };
  std::erase_if(s.hellos, [&](const Hello &h) { return !inDesired(h.relay); });
  for (auto &p : s.paths) {
    if (!p.retiring && !inDesired(p.relay)) {
      p.retiring = true;
      p.retireSince = now;
    }
  }
  for (const auto *c : candidates) {
    if (inDesired(c->relay) && !inCurrent(c->relay)) {
      sendHello(s, c->relay, c->rate, now, wall);
    }
  }
}

void OracleSignaling::onHelloAck(const oracle::Message &m, Nanos now, Nanos wall) {
  const oracle::Hello ack = oracle::decodeHello(m);
  const auto age = wall.count() - m.header.timestamp_ns;
  if (ack.peer != config_.self ||
      age > std::chrono::nanoseconds(std::chrono::seconds(30)).count() ||
      age < -std::chrono::nanoseconds(std::chrono::seconds(30)).count()) {
    ++unmatched_;
    return;
  }
  for (auto &s : stripes_) {
    for (auto it = s.hellos.begin(); it != s.hellos.end(); ++it) {
      if (it->nonce != m.header.nonce || it->relay != m.header.sender) {
        continue;
      }
      const Hello hello = *it;
      s.hellos.erase(it); // the nonce is spent: a replayed ack matches nothing
      ++s.hellosAcked;
      const PathId id = ingress_.addPath(s.spec.name, hello.relay, hello.rate, now);
      s.paths.push_back(Path{.id = id, .relay = hello.relay, .added = now});
      return;
    }
  }
  ++unmatched_;
}

void OracleSignaling::onReadable(Nanos now, Nanos wall) noexcept {
  try {
    const std::size_t n = socket_.receive(*rx_);
    for (std::size_t i = 0; i < n; ++i) {
      const oracle::Message m = oracle::parse(rx_->data(i), key_);
      if (!m.ok()) {
        ++rejected_;
        continue;
      }
      if (m.header.type == oracle::MessageType::HelloAck) {
        onHelloAck(m, now, wall);
        continue;
      }
      if (m.header.type != oracle::MessageType::Answer) { // matched by nonce below
        ++unmatched_;
        continue;
      }
      bool matched = false;
      for (auto &s : stripes_) {
        if (s.queryNonce && *s.queryNonce == m.header.nonce) {
          onAnswer(s, oracle::decodeAnswer(m), now, wall);
          matched = true;
        }
      }
      unmatched_ += matched ? 0U : 1U;
    }
    flush();
  } catch (...) {
    // Out of memory or a refused path: the next tick tries again.
  }
}

void OracleSignaling::tickStripe(Stripe &s, Nanos now, Nanos wall) {
  const auto views = ingress_.paths(s.spec.name);
  for (auto it = s.paths.begin(); it != s.paths.end();) {
    const auto view = std::find_if(views.begin(), views.end(),
                                   [&](const Ingress::PathView &v) { return v.id == it->id; });
    if (view == views.end()) { // removed by hand (osrctl remove-path)
      it = s.paths.erase(it);
      continue;
    }
    const bool wentDown = view->wentDown > it->wentDown;
    const bool neverUp = !it->wasUp && !view->up && now - it->added > config_.upTimeout;
    if (wentDown || neverUp) {
      ingress_.removePath(s.spec.name, it->id);
      exclude(s, it->relay, now);
      ++s.failed;
      s.queryNow = true;
      it = s.paths.erase(it);
      continue;
    }
    it->wasUp = it->wasUp || view->up;
    ++it;
  }
  // Make before break: replaced paths go once the others carry the stripe.
  std::size_t active = 0;
  std::size_t activeUp = 0;
  for (const auto &p : s.paths) {
    if (!p.retiring) {
      ++active;
      activeUp += p.wasUp ? 1U : 0U;
    }
  }
  for (auto it = s.paths.begin(); it != s.paths.end();) {
    if (it->retiring && ((s.hellos.empty() && activeUp == active && active > 0) ||
                         now - it->retireSince > config_.upTimeout)) {
      ingress_.removePath(s.spec.name, it->id);
      it = s.paths.erase(it);
      continue;
    }
    ++it;
  }
  for (auto it = s.hellos.begin(); it != s.hellos.end();) {
    if (now - it->sent > config_.replyTimeout) {
      ++s.helloTimeouts;
      exclude(s, it->relay, now);
      s.queryNow = true;
      it = s.hellos.erase(it);
      continue;
    }
    ++it;
  }
  std::erase_if(s.excluded, [&](const auto &e) { return e.second <= now; });
  if (s.queryNonce && now - s.querySent > config_.replyTimeout) {
    s.queryNonce.reset(); // lost: ask again
    s.queryNow = true;
  }
  if (s.queryNonce) {
    return;
  }
  const bool short_ = active + s.hellos.size() < s.spec.k;
  const bool due = !s.lastQuery || now - *s.lastQuery >= config_.requery ||
                   (short_ && now - *s.lastQuery >= config_.replyTimeout) ||
                   (s.queryNow && now - *s.lastQuery >= std::chrono::milliseconds(100));
  if (due) {
    sendQuery(s, now, wall);
  }
}

void OracleSignaling::tick(Nanos now, Nanos wall) noexcept {
  try {
    for (auto &s : stripes_) {
      tickStripe(s, now, wall);
    }
  } catch (...) {
  }
  flush();
}

bool OracleSignaling::settled(const Stripe &s) {
  if (s.sameRanked < 2 || !s.hellos.empty() || s.ranked.size() != s.spec.k ||
      s.paths.size() != s.spec.k) {
    return false;
  }
  return std::all_of(s.paths.begin(), s.paths.end(), [&](const Path &p) {
    return p.wasUp && !p.retiring &&
           std::find(s.ranked.begin(), s.ranked.end(), p.relay) != s.ranked.end();
  });
}

nlohmann::json OracleSignaling::status() const {
  nlohmann::json stripes = nlohmann::json::array();
  for (const auto &s : stripes_) {
    nlohmann::json relays = nlohmann::json::array();
    for (const auto &p : s.paths) {
      relays.push_back({{"relay", p.relay.toString()},
                        {"path", p.id},
                        {"up_once", p.wasUp},
                        {"retiring", p.retiring}});
    }
    nlohmann::json excluded = nlohmann::json::array();
    for (const auto &e : s.excluded) {
      excluded.push_back(e.first.toString());
    }
    stripes.push_back(
        {{"stripe", s.spec.name},
         {"k", s.spec.k},
         {"objective", std::string(oracle::toString(s.spec.objective))},
         {"relays", relays},
         {"pending_hellos", s.hellos.size()},
         {"settled", settled(s)},
         {"excluded", excluded},
         {"last_answer", s.lastAnswer.is_null() ? nlohmann::json::array() : s.lastAnswer},
         {"error", s.lastError},
         {"queries", s.queries},
         {"answers", s.answers},
         {"hellos_sent", s.hellosSent},
         {"hellos_acked", s.hellosAcked},
         {"hello_timeouts", s.helloTimeouts},
         {"paths_failed", s.failed},
         {"restripes", s.restripes}});
  }
  return {{"oracle", config_.oracle.toString()},
          {"stripes", stripes},
          {"rejected", rejected_},
          {"unmatched", unmatched_}};
}

} // namespace nvbox::osr

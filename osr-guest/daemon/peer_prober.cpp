#include "peer_prober.hpp"

#include <algorithm>
#include <cmath>

namespace nvbox::osr {
namespace {

constexpr double kGain = 0.25;

double smooth(double old, double sample) {
  return old < 0 || old == 0 ? sample : old + kGain * (sample - old);
}

} // namespace

PeerProber::PeerProber(const OverlayKey &key, Endpoint self, std::vector<Endpoint> peers,
                       Nanos interval, std::string group)
    : key_(key), auth_(key), self_(self), interval_(interval), group_(std::move(group)) {
  for (const auto &ep : peers) {
    if (ep != self_ && std::none_of(peers_.begin(), peers_.end(),
                                    [&](const Peer &p) { return p.endpoint == ep; })) {
      peers_.push_back(Peer{.endpoint = ep});
    }
  }
  // The payload: the return address, as in every PROBE, then padding.
  payload_[0] = static_cast<std::uint8_t>(self_.addr >> 24);
  payload_[1] = static_cast<std::uint8_t>(self_.addr >> 16);
  payload_[2] = static_cast<std::uint8_t>(self_.addr >> 8);
  payload_[3] = static_cast<std::uint8_t>(self_.addr);
  payload_[4] = static_cast<std::uint8_t>(self_.port >> 8);
  payload_[5] = static_cast<std::uint8_t>(self_.port);
  entries_.reserve(peers_.size());
  cursor_ = peers_.size(); // nothing to send before the first round
}

void PeerProber::settle(Peer &p) noexcept {
  if (p.trainsSent == 0) {
    return;
  }
  p.returned[p.trains % kWindow] = static_cast<std::uint8_t>(p.received);
  ++p.trains;
  if (p.received >= 3 && p.last > p.first) {
    const double seconds = std::chrono::duration<double>(p.last - p.first).count();
    p.rate = smooth(p.rate, static_cast<double>(p.bytes) / seconds);
  }
}

bool PeerProber::due(Nanos now) noexcept {
  if (lastRound_ && now - *lastRound_ < interval_) {
    return false;
  }
  lastRound_ = now;
  for (Peer &p : peers_) {
    settle(p);
  }
  ++round_;
  cursor_ = 0;
  return true;
}

bool PeerProber::send(Nanos now, PacketBatch &out) noexcept {
  while (cursor_ < peers_.size()) {
    if (PacketBatch::kBatch - out.size() < kTrain) {
      return true;
    }
    Peer &p = peers_[cursor_];
    p.round = round_;
    p.received = 0;
    p.bytes = 0;
    p.firstRtt = false;
    for (std::uint32_t i = 0; i < kTrain; ++i) {
      wire::Header h;
      h.type = wire::PacketType::Probe;
      h.flow_id = kMeasureFlow;
      h.seq = round_ * kTrain + i;
      h.path_seq = static_cast<std::uint16_t>(cursor_); // which peer: at most 1024
      h.send_us = static_cast<std::uint32_t>(static_cast<std::uint64_t>(now.count()) / 1000);
      h.dst = self_; // the peer relays it back to us
      const std::size_t n = wire::encode(h, payload_, auth_, out.slot());
      if (n != 0) {
        out.commit(n, p.endpoint);
      }
    }
    ++p.trainsSent;
    ++cursor_;
  }
  return false;
}

void PeerProber::onReturn(const wire::Header &header, std::size_t datagramBytes,
                          Nanos now) noexcept {
  if (header.path_seq >= peers_.size()) {
    return;
  }
  Peer &p = peers_[header.path_seq];
  if (header.seq / kTrain != p.round || p.received >= kTrain) {
    return; // a straggler of an earlier train
  }
  ++p.returns;
  if (p.received == 0) {
    p.first = now;
  } else {
    p.bytes += datagramBytes;
  }
  p.last = now;
  ++p.received;
  if (header.seq % kTrain == 0 && !p.firstRtt) {
    p.firstRtt = true;
    const std::uint32_t nowUs =
        static_cast<std::uint32_t>(static_cast<std::uint64_t>(now.count()) / 1000);
    const auto rtt = std::chrono::microseconds(nowUs - header.send_us); // mod 2^32
    if (rtt.count() > 0) {
      p.rttUs[p.rttSamples++ % kDelayWindow] = static_cast<double>(rtt.count());
      double least = -1;
      for (const double sample : p.rttUs) {
        if (sample > 0 && (least < 0 || sample < least)) {
          least = sample;
        }
      }
      p.delayUs = least / 2;
    }
  }
}

std::size_t PeerProber::report(const Endpoint &oracle, std::int64_t wallNs,
                               PacketBatch &out) noexcept {
  entries_.clear();
  for (const Peer &p : peers_) {
    const std::size_t window = std::min<std::size_t>(p.trains, kWindow);
    if (window == 0) {
      continue;
    }
    std::uint32_t got = 0;
    for (std::size_t i = 0; i < window; ++i) {
      got += p.returned[i];
    }
    const double loss = 1.0 - static_cast<double>(got) / static_cast<double>(window * kTrain);
    oracle::ReportEntry e;
    e.peer = p.endpoint;
    e.loss = static_cast<std::uint16_t>(std::lround(std::clamp(loss, 0.0, 1.0) * 10000));
    e.delay_us = p.delayUs < 0 ? 0 : static_cast<std::uint32_t>(std::lround(p.delayUs));
    e.rate = static_cast<std::uint64_t>(p.rate);
    if (got == 0) {
      e.loss = oracle::kLossScale; // unreachable: the oracle excludes it
    }
    entries_.push_back(e);
  }
  std::size_t sent = 0;
  for (std::size_t at = 0; at < entries_.size() || (at == 0 && sent == 0);
       at += kEntriesPerReport) {
    if (out.full()) {
      break;
    }
    // Strictly increasing timestamps: the oracle refuses a report that is
    // not newer than the last one it took from this sender.
    lastWall_ = std::max(wallNs, lastWall_ + 1);
    oracle::Header h{.type = oracle::MessageType::Report,
                     .sender = self_,
                     .nonce = oracle::randomNonce(),
                     .timestamp_ns = lastWall_};
    const std::size_t count = std::min(kEntriesPerReport, entries_.size() - at);
    const std::size_t n =
        oracle::encodeReport(h, group_, std::span(entries_).subspan(at, count), key_, out.slot());
    if (n != 0) {
      out.commit(n, oracle);
      ++sent;
    }
    if (entries_.empty()) {
      break;
    }
  }
  return sent;
}

nlohmann::json PeerProber::status() const {
  nlohmann::json peers = nlohmann::json::array();
  for (const Peer &p : peers_) {
    const std::size_t window = std::min<std::size_t>(p.trains, kWindow);
    std::uint32_t got = 0;
    for (std::size_t i = 0; i < window; ++i) {
      got += p.returned[i];
    }
    peers.push_back({{"peer", p.endpoint.toString()},
                     {"delay_us", p.delayUs < 0 ? -1 : std::lround(p.delayUs)},
                     {"rate", static_cast<std::uint64_t>(p.rate)},
                     {"loss", window == 0 ? 0.0
                                          : 1.0 - static_cast<double>(got) /
                                                      static_cast<double>(window * kTrain)},
                     {"trains", p.trainsSent},
                     {"returns", p.returns}});
  }
  return peers;
}

} // namespace nvbox::osr

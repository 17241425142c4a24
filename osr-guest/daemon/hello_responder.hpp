// HelloResponder — the relay's side of the tunnel handshake.
//
// What it does: an ingress that is about to use this router as a relay sends
// it a HELLO (oracle_wire) on the tunnel port: nonce, sender (the ingress),
// the relay endpoint it addresses, and a timestamp, all under the overlay
// MAC. The responder answers with a HELLO_ACK echoing the nonce — signed by
// the addressed endpoint, naming the ingress — only if the HELLO
//   - authenticates with the overlay key (the sender is an overlay member),
//   - addresses one of this router's own endpoints,
//   - is fresh and newer than the last HELLO of that sender (ReplayGuard:
//     a replayed or stale HELLO is refused, nothing is sent back).
// Relaying itself needs no handshake (every tunnel packet is authenticated);
// the HELLO/HELLO_ACK tells the ingress that a live member consents to relay
// before any data goes that way.
//
// Parameters: the overlay key, a predicate "is this endpoint mine", the
// freshness window. Counters: accepted, refused by reason (parse status,
// not for me, wrong type, stale, replayed).
// Threading: the daemon's thread; noexcept. Allocates only the first time a
// sender is seen (ReplayGuard), never for data packets.
#pragma once

#include "osr/oracle_wire.hpp"
#include "osr/replay_guard.hpp"
#include "udp_socket.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>

namespace nvbox::osr {

class HelloResponder {
public:
  using IsLocal = std::function<bool(const Endpoint &)>;
  HelloResponder(const OverlayKey &key, IsLocal isLocal, Nanos window = std::chrono::seconds(30));

  // A datagram with the oracle magic arrived on the tunnel socket from
  // `from`; wallNow is CLOCK_REALTIME. Queues a HELLO_ACK into `out` if due.
  void onDatagram(std::span<const std::uint8_t> bytes, const Endpoint &from, Nanos wallNow,
                  PacketBatch &out) noexcept;

  [[nodiscard]] nlohmann::json status() const;
  [[nodiscard]] std::uint64_t accepted() const { return accepted_; }

private:
  void refuse(const std::string &why) noexcept;

  OverlayKey key_;
  IsLocal isLocal_;
  ReplayGuard guard_;
  std::uint64_t accepted_ = 0;
  std::map<std::string, std::uint64_t> refused_;
};

} // namespace nvbox::osr

#include "hello_responder.hpp"

namespace nvbox::osr {

HelloResponder::HelloResponder(const OverlayKey &key, IsLocal isLocal, Nanos window)
    : key_(key), isLocal_(std::move(isLocal)), guard_(window) {}

void HelloResponder::refuse(const std::string &why) noexcept {
  try {
    ++refused_[why];
  } catch (...) {
  }
}

void HelloResponder::onDatagram(std::span<const std::uint8_t> bytes, const Endpoint &from,
                                Nanos wallNow, PacketBatch &out) noexcept {
  const oracle::Message m = oracle::parse(bytes, key_);
  if (!m.ok()) {
    refuse(std::string(oracle::toString(m.status)));
    return;
  }
  if (m.header.type != oracle::MessageType::Hello) {
    refuse("not a hello");
    return;
  }
  const oracle::Hello hello = oracle::decodeHello(m);
  if (!isLocal_(hello.peer)) {
    refuse("not for this router");
    return;
  }
  try {
    const auto verdict = guard_.accept(m.header.sender, m.header.timestamp_ns, wallNow);
    if (verdict != ReplayGuard::Verdict::Accepted) {
      refuse(toString(verdict));
      return;
    }
  } catch (...) {
    refuse("out of memory");
    return;
  }
  if (out.full()) {
    refuse("send queue full");
    return;
  }
  const oracle::Header ack{.type = oracle::MessageType::HelloAck,
                           .sender = hello.peer,
                           .nonce = m.header.nonce,
                           .timestamp_ns = wallNow.count()};
  const std::size_t n =
      oracle::encodeHello(ack, oracle::Hello{.peer = m.header.sender}, key_, out.slot());
  if (n != 0) {
    out.commit(n, from);
    ++accepted_;
  }
}

nlohmann::json HelloResponder::status() const {
  return {{"accepted", accepted_}, {"refused", refused_}};
}

} // namespace nvbox::osr

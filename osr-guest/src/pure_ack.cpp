#include "osr/pure_ack.hpp"

#include "tcp_ipv4.hpp"

namespace nvbox::osr {

bool isPureTcpAck(std::span<const std::uint8_t> packet) noexcept {
  using namespace tcpip;
  if (packet.size() < kIpMinHeader + kTcpMinHeader || (packet[0] >> 4) != 4) {
    return false;
  }
  const std::size_t ipHeader = std::size_t{packet[0] & 0x0Fu} * 4;
  // More fragments or a fragment offset: only the first fragment holds the
  // TCP header, and a fragment's TCP length is not its own.
  const bool fragment = (load16(&packet[6]) & 0x3FFF) != 0;
  if (ipHeader < kIpMinHeader || load16(&packet[2]) != packet.size() || fragment ||
      packet[9] != kProtoTcp || packet.size() < ipHeader + kTcpMinHeader) {
    return false;
  }
  const std::uint8_t *tcp = &packet[ipHeader];
  const std::size_t tcpHeader = std::size_t{static_cast<std::uint8_t>(tcp[12] >> 4)} * 4;
  const std::uint8_t flags = tcp[13];
  return tcpHeader >= kTcpMinHeader && ipHeader + tcpHeader == packet.size() &&
         (flags & kAck) != 0 && (flags & (kSyn | kFin | kRst)) == 0;
}

} // namespace nvbox::osr

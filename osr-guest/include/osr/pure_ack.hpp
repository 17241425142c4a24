// isPureTcpAck — whether an application packet is a TCP segment that only
// acknowledges: the packets the ingress sends EXPRESS (wire.hpp).
//
// What it does: true for an unfragmented IPv4 packet whose total length is
// its size, carrying TCP with ACK set, SYN, FIN and RST clear, and no
// payload (total length = IP header + TCP header, options included).
// Everything else, malformed packets included, is false.
//
// Why: a stripe held to its slowest path (PlayoutClock) gives TCP the
// slowest path's latency in the data's direction, which is honest; its ACKs
// need no stripe, and sent on the fastest path outside the flow's sequence
// they take the slow path's latency out of the other half of the RTT. An
// ACK overtaking data of the same connection is harmless to TCP; a segment
// with data, SYN, FIN or RST must keep its place, so it is not pure.
//
// Parameters, counters: none. Threading: a pure function; reads only the
// span it is given.
#pragma once

#include <cstdint>
#include <span>

namespace nvbox::osr {

[[nodiscard]] bool isPureTcpAck(std::span<const std::uint8_t> packet) noexcept;

} // namespace nvbox::osr

// Endpoint — an OSR's UDP tunnel address (IPv4 + port), as carried in the
// wire header and as configured ("10.9.0.2:7400").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr_in;

namespace nvbox::osr {

struct Endpoint {
  std::uint32_t addr = 0; // host byte order
  std::uint16_t port = 0;

  // "A.B.C.D:PORT"; nothing on any malformed input.
  static std::optional<Endpoint> parse(std::string_view text);
  [[nodiscard]] std::string toString() const;
  [[nodiscard]] sockaddr_in toSockaddr() const;
  static Endpoint fromSockaddr(const sockaddr_in &sa);
  [[nodiscard]] bool valid() const { return port != 0; }

  friend bool operator==(const Endpoint &, const Endpoint &) = default;
};

// An IPv4 prefix "A.B.C.D/LEN" for classifying application packets.
struct Prefix {
  std::uint32_t addr = 0; // host byte order, masked
  std::uint8_t len = 0;

  static std::optional<Prefix> parse(std::string_view text);
  [[nodiscard]] bool contains(std::uint32_t ip) const;
  [[nodiscard]] std::string toString() const;
};

} // namespace nvbox::osr

#include "osr/endpoint.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <netinet/in.h>

namespace nvbox::osr {
namespace {

std::optional<std::uint32_t> parseIpv4(std::string_view text) {
  if (text.empty() || text.size() >= INET_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET_ADDRSTRLEN] = {};
  text.copy(buf, text.size());
  in_addr a{};
  if (::inet_pton(AF_INET, buf, &a) != 1) {
    return std::nullopt;
  }
  return ntohl(a.s_addr);
}

template <typename T> std::optional<T> parseNumber(std::string_view text, T max) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value > max) {
    return std::nullopt;
  }
  return value;
}

std::string formatIpv4(std::uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 0xff) + "." +
         std::to_string((addr >> 8) & 0xff) + "." + std::to_string(addr & 0xff);
}

std::uint32_t maskOf(std::uint8_t len) {
  return len == 0 ? 0 : ~std::uint32_t{0} << (32U - len);
}

} // namespace

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  const auto addr = parseIpv4(text.substr(0, colon));
  const auto port = parseNumber<std::uint16_t>(text.substr(colon + 1), 65535);
  if (!addr || !port || *port == 0) {
    return std::nullopt;
  }
  return Endpoint{*addr, *port};
}

std::string Endpoint::toString() const {
  return formatIpv4(addr) + ":" + std::to_string(port);
}

sockaddr_in Endpoint::toSockaddr() const {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr);
  sa.sin_port = htons(port);
  return sa;
}

Endpoint Endpoint::fromSockaddr(const sockaddr_in &sa) {
  return Endpoint{ntohl(sa.sin_addr.s_addr), ntohs(sa.sin_port)};
}

std::optional<Prefix> Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const auto addr = parseIpv4(text.substr(0, slash));
  const auto len = parseNumber<unsigned>(text.substr(slash + 1), 32);
  if (!addr || !len) {
    return std::nullopt;
  }
  const auto l = static_cast<std::uint8_t>(*len);
  return Prefix{*addr & maskOf(l), l};
}

bool Prefix::contains(std::uint32_t ip) const {
  return (ip & maskOf(len)) == addr;
}

std::string Prefix::toString() const {
  return formatIpv4(addr) + "/" + std::to_string(len);
}

} // namespace nvbox::osr

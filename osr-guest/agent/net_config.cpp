#include "net_config.hpp"

#include "nvbox/netconfig/fd.hpp"

#include <arpa/inet.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <fcntl.h>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace po = boost::program_options;

namespace nvbox::agent {
namespace {

constexpr std::size_t kMaxFileBytes = std::size_t{1} << 20;
constexpr std::uint64_t kMinRate = 1'000;          // bit/s
constexpr std::uint64_t kMaxRate = 10'000'000'000; // bit/s: tbf takes bytes/s as an int
constexpr std::uint64_t kMaxDelayUs = 10'000'000;  // 10 s
constexpr std::size_t kMaxSysctlValue = 256;

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) {
      return out;
    }
    start = end + 1;
  }
}

bool allOf(std::string_view text, std::string_view allowed) {
  return text.find_first_not_of(allowed) == std::string_view::npos;
}

constexpr std::string_view kDigits = "0123456789";

// Plain decimal digits only: from_chars alone would take "+1" or "0x…" apart
// differently on other types, and the config has no use for them.
std::optional<std::uint64_t> unsignedNumber(std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  if (text.empty() || !allOf(text, kDigits)) {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > max) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> macAddress(std::string_view text) {
  if (text.size() != 17) {
    return std::nullopt;
  }
  std::string mac;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i % 3 == 2) {
      if (c != ':') {
        return std::nullopt;
      }
      mac += c;
    } else if (c >= '0' && c <= '9') {
      mac += c;
    } else if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      mac += static_cast<char>(c | 0x20); // lower case
    } else {
      return std::nullopt;
    }
  }
  return mac;
}

// Dotted-quad IPv4 in host byte order.
std::optional<std::uint32_t> ipv4(std::string_view text) {
  // The character check keeps an embedded NUL from cutting the text short.
  if (text.empty() || text.size() > 15 || !allOf(text, "0123456789.")) {
    return std::nullopt;
  }
  in_addr addr{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) {
    return std::nullopt;
  }
  return ntohl(addr.s_addr);
}

std::string ipv4Text(std::uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 0xff) + "." +
         std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

struct Cidr {
  std::uint32_t address = 0;
  unsigned length = 0;
  [[nodiscard]] std::string text() const {
    return ipv4Text(address) + "/" + std::to_string(length);
  }
};

std::optional<Cidr> cidr(std::string_view text, unsigned minLength) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const auto address = ipv4(text.substr(0, slash));
  const auto length = unsignedNumber(text.substr(slash + 1), 32);
  if (!address || !length || *length < minLength || text.size() - slash > 3) {
    return std::nullopt;
  }
  return Cidr{*address, static_cast<unsigned>(*length)};
}

// Linux refuses '/', ':' and white space in link names; nvbox keeps to a
// plainer set that never needs quoting anywhere.
bool linkName(std::string_view text) {
  return !text.empty() && text.size() <= 15 && text != "." && text != ".." &&
         allOf(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
}

std::optional<std::uint64_t> rate(std::string_view text) {
  std::uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
    case 'k':
    case 'K':
      unit = 1'000;
      break;
    case 'M':
      unit = 1'000'000;
      break;
    case 'G':
      unit = 1'000'000'000;
      break;
    default:
      break;
    }
  }
  if (unit != 1) {
    text.remove_suffix(1);
  }
  const auto value = unsignedNumber(text, kMaxRate / unit);
  if (!value || *value * unit < kMinRate) {
    return std::nullopt;
  }
  return *value * unit;
}

std::optional<std::uint32_t> duration(std::string_view text) {
  std::uint64_t unit = 0;
  if (text.ends_with("ms")) {
    unit = 1'000;
  } else if (text.ends_with("us")) {
    unit = 1;
  } else {
    return std::nullopt;
  }
  text.remove_suffix(2);
  const auto value = unsignedNumber(text, kMaxDelayUs / unit);
  if (!value) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(*value * unit);
}

std::optional<double> percent(std::string_view text) {
  if (text.ends_with('%')) {
    text.remove_suffix(1);
  }
  // DIGITS[.DIGITS]: from_chars would also take "nan", "inf" and exponents.
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty() || whole.size() > 3 || !allOf(whole, kDigits) ||
      (dot != std::string_view::npos &&
       (fraction.empty() || fraction.size() > 6 || !allOf(fraction, kDigits)))) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 100) {
    return std::nullopt;
  }
  return value;
}

// The KEY=VALUE fields of a comma-separated value, each key at most once.
std::vector<std::pair<std::string_view, std::string_view>> fields(std::string_view text,
                                                                  const std::string &label) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  std::set<std::string_view> seen;
  for (const std::string_view field : split(text, ',')) {
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) {
      throw std::invalid_argument(label + ": field " + quoteValue(field) + " is not KEY=VALUE");
    }
    const std::string_view key = field.substr(0, eq);
    if (!seen.insert(key).second) {
      throw std::invalid_argument(label + ": field " + quoteValue(key) + " given twice");
    }
    out.emplace_back(key, field.substr(eq + 1));
  }
  return out;
}

// The fields of an iface line; `what` ("iface", "shape") opens messages.
IfaceSpec parseIfaceFields(std::string_view text, const std::string &what) {
  const std::string label = what + " " + quoteValue(text);
  IfaceSpec spec;
  for (const auto &[key, value] : fields(text, label)) {
    if (key == "mac") {
      const auto mac = macAddress(value);
      if (!mac) {
        throw std::invalid_argument(label + ": bad MAC address " + quoteValue(value));
      }
      spec.mac = *mac;
    } else if (key == "name") {
      if (!linkName(value)) {
        throw std::invalid_argument(label + ": bad interface name " + quoteValue(value) +
                                    " (1-15 of a-z A-Z 0-9 _ . -)");
      }
      spec.name = value;
    } else if (key == "addr") {
      for (const std::string_view one : split(value, '+')) {
        const auto address = cidr(one, 1);
        if (!address) {
          throw std::invalid_argument(label + ": bad address " + quoteValue(one) +
                                      " (IPv4 A.B.C.D/1-32)");
        }
        spec.addresses.push_back(address->text());
      }
    } else if (key == "mtu") {
      const auto mtu = unsignedNumber(value, 65535);
      if (!mtu || *mtu < 68) {
        throw std::invalid_argument(label + ": mtu must be from 68 to 65535, not " +
                                    quoteValue(value));
      }
      spec.mtu = static_cast<std::uint32_t>(*mtu);
    } else if (key == "rate") {
      spec.rate = rate(value);
      if (!spec.rate) {
        throw std::invalid_argument(
            label + ": rate must be 1k to 10G bit/s (digits, then k, M or G), not " +
            quoteValue(value));
      }
    } else if (key == "delay" || key == "jitter") {
      const auto us = duration(value);
      if (!us) {
        throw std::invalid_argument(label + ": " + std::string(key) +
                                    " must be 0 to 10000ms, in ms or us, not " + quoteValue(value));
      }
      (key == "delay" ? spec.delayUs : spec.jitterUs) = us;
    } else if (key == "loss") {
      spec.lossPercent = percent(value);
      if (!spec.lossPercent) {
        throw std::invalid_argument(label + ": loss must be a percentage from 0 to 100, not " +
                                    quoteValue(value));
      }
    } else {
      throw std::invalid_argument(label + ": unknown field " + quoteValue(key));
    }
  }
  if (spec.mac.empty() == spec.name.empty()) {
    throw std::invalid_argument(label + ": give exactly one of mac= and name=");
  }
  return spec;
}

IfaceSpec parseIface(std::string_view text) {
  IfaceSpec spec = parseIfaceFields(text, "iface");
  if (spec.addresses.empty()) {
    throw std::invalid_argument("iface " + quoteValue(text) + ": needs addr=");
  }
  return spec;
}

RouteSpec parseRoute(std::string_view text) {
  const std::string label = "route " + quoteValue(text);
  RouteSpec spec;
  for (const auto &[key, value] : fields(text, label)) {
    if (key == "dst") {
      const auto dst = value == "default" ? std::optional<Cidr>(Cidr{}) : cidr(value, 0);
      if (!dst) {
        throw std::invalid_argument(label + ": bad destination " + quoteValue(value) +
                                    " (A.B.C.D/0-32 or default)");
      }
      // 64 bits wide so that a /32 shifts by 32 without undefined behaviour.
      const auto hostMask = static_cast<std::uint32_t>(0xffffffffULL >> dst->length);
      if ((dst->address & hostMask) != 0) {
        throw std::invalid_argument(label + ": destination " + quoteValue(value) +
                                    " has host bits set");
      }
      spec.dst = dst->text();
    } else if (key == "via") {
      const auto via = ipv4(value);
      if (!via) {
        throw std::invalid_argument(label + ": bad gateway " + quoteValue(value) +
                                    " (IPv4 A.B.C.D)");
      }
      spec.via = ipv4Text(*via);
    } else if (key == "dev") {
      if (!linkName(value)) {
        throw std::invalid_argument(label + ": bad device name " + quoteValue(value));
      }
      spec.dev = value;
    } else {
      throw std::invalid_argument(label + ": unknown field " + quoteValue(key));
    }
  }
  if (spec.dst.empty() || spec.via.empty()) {
    throw std::invalid_argument(label + ": needs dst= and via=");
  }
  return spec;
}

SysctlSpec parseSysctl(std::string_view text) {
  const std::string label = "sysctl " + quoteValue(text);
  const std::size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    throw std::invalid_argument(label + ": expected KEY=VALUE");
  }
  const std::string_view key = text.substr(0, eq);
  const std::string_view value = text.substr(eq + 1);
  // The key becomes a path under /proc/sys: nothing may climb out of it.
  if (key.empty() || key.size() > 128 || !allOf(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") ||
      key.find("..") != std::string_view::npos || key.front() == '.' || key.back() == '.') {
    throw std::invalid_argument(label + ": bad key " + quoteValue(key) +
                                " (a-z 0-9 _ - and single dots)");
  }
  const bool printable =
      std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (value.empty() || value.size() > kMaxSysctlValue || !printable) {
    throw std::invalid_argument(label + ": the value must be 1-256 printable characters");
  }
  return {std::string(key), std::string(value)};
}

std::string parseHostname(std::string_view text) {
  if (text.empty() || text.size() > 63 || !allOf(text, "abcdefghijklmnopqrstuvwxyz0123456789-")) {
    throw std::invalid_argument("bad hostname " + quoteValue(text) + " (1-63 of a-z 0-9 -)");
  }
  return std::string(text);
}

po::parsed_options parseLine(std::string_view line, const po::options_description &keys) {
  std::istringstream in{std::string(line)};
  try {
    return po::parse_config_file(in, keys, true);
  } catch (const po::error &) {
    throw std::invalid_argument("expected 'key = value', not " + quoteValue(line));
  }
}

// Keys seen so far, each with the line that gave it, to name both lines of a
// duplicate.
class Seen {
public:
  void add(const std::string &key, int line, const std::string &what) {
    const auto [it, fresh] = lines_.emplace(key, line);
    if (!fresh) {
      throw std::invalid_argument(what + " already configured on line " +
                                  std::to_string(it->second));
    }
  }

private:
  std::map<std::string, int> lines_;
};

} // namespace

std::string quoteValue(std::string_view value) {
  constexpr std::size_t kMax = 64;
  std::string out = "'";
  for (const char c : value.substr(0, kMax)) {
    out += c >= 0x20 && c < 0x7f ? c : '?';
  }
  return out + (value.size() > kMax ? "...'" : "'");
}

NetConfig parseNetConfig(std::string_view text) {
  po::options_description keys;
  keys.add_options()("hostname", po::value<std::string>())("iface", po::value<std::string>())(
      "route", po::value<std::string>())("sysctl", po::value<std::string>());
  NetConfig config;
  Seen seen;
  int lineNo = 0;
  for (const std::string_view line : split(text, '\n')) {
    ++lineNo;
    try {
      // A section's prefix would span lines, and every line is parsed on
      // its own so that each option knows its line number.
      const std::size_t first = line.find_first_not_of(" \t");
      if (first != std::string_view::npos && line[first] == '[') {
        throw std::invalid_argument("sections ('[name]') are not supported");
      }
      for (const auto &option : parseLine(line, keys).options) {
        const std::string &key = option.string_key;
        if (option.unregistered) {
          throw std::invalid_argument("unknown key " + quoteValue(key));
        }
        const std::string &value = option.value.front();
        if (key == "hostname") {
          seen.add("hostname", lineNo, "hostname");
          config.hostname = parseHostname(value);
        } else if (key == "iface") {
          IfaceSpec spec = parseIface(value);
          seen.add("iface " + spec.selector(), lineNo,
                   "iface " + quoteValue(value) + ": " +
                       (spec.mac.empty() ? "interface " + quoteValue(spec.name)
                                         : "MAC address " + spec.mac));
          config.ifaces.push_back(std::move(spec));
        } else if (key == "route") {
          RouteSpec spec = parseRoute(value);
          seen.add("route " + spec.dst, lineNo,
                   "route " + quoteValue(value) + ": a route to " + spec.dst + " is");
          config.routes.push_back(std::move(spec));
        } else {
          SysctlSpec spec = parseSysctl(value);
          seen.add("sysctl " + spec.key, lineNo, "sysctl " + quoteValue(spec.key));
          config.sysctls.push_back(std::move(spec));
        }
      }
    } catch (const std::invalid_argument &e) {
      throw std::invalid_argument("net config line " + std::to_string(lineNo) + ": " + e.what());
    }
  }
  return config;
}

IfaceSpec parseShape(std::string_view text) {
  IfaceSpec spec = parseIfaceFields(text, "shape");
  if (!spec.addresses.empty()) {
    throw std::invalid_argument("shape " + quoteValue(text) +
                                ": addresses are not shaping (mac= or name=, then mtu, rate, "
                                "delay, jitter, loss)");
  }
  return spec;
}

std::string readNetConfigFile(const std::string &path) {
  const netconfig::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw std::runtime_error(netconfig::sysError("cannot read net config '" + path + "'"));
  }
  std::string text;
  char buf[16384];
  while (true) {
    const ssize_t got = ::read(fd.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      throw std::runtime_error(netconfig::sysError("cannot read net config '" + path + "'"));
    }
    if (got == 0) {
      return text;
    }
    text.append(buf, static_cast<std::size_t>(got));
    if (text.size() > kMaxFileBytes) {
      throw std::runtime_error("cannot read net config '" + path + "': larger than 1 MiB");
    }
  }
}

} // namespace nvbox::agent

#include "nvbox/topology.hpp"

#include "nvbox/router.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <set>
#include <sstream>
#include <unistd.h>
#include <utility>

namespace nvbox {

namespace {

// A topology is a short hand-written file; anything bigger is a mistake (or
// an attack on the YAML parser), so it is refused before parsing.
constexpr std::size_t kMaxTopologyBytes = 1024 * 1024;
constexpr std::size_t kMaxQuoted = 64;

// Control bytes would break the one-error-per-line promise.
std::string printable(std::string text) {
  for (char &c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      c = '?';
    }
  }
  return text;
}

std::string quote(const std::string &value) {
  return "'" + printable(value.substr(0, kMaxQuoted)) + (value.size() > kMaxQuoted ? "..." : "") +
         "'";
}

Mark markOf(const YAML::Node &node) {
  const YAML::Mark m = node.Mark();
  // yaml-cpp counts from 0 and uses -1 for "no position".
  return Mark{std::max(m.line, 0) + 1, std::max(m.column, 0) + 1};
}

std::string typeName(const YAML::Node &node) {
  switch (node.Type()) {
  case YAML::NodeType::Null:
    return "an empty value";
  case YAML::NodeType::Scalar:
    return "a scalar";
  case YAML::NodeType::Sequence:
    return "a sequence";
  case YAML::NodeType::Map:
    return "a mapping";
  case YAML::NodeType::Undefined:
    break;
  }
  return "an empty value";
}

bool allOf(const std::string &s, std::size_t from, const std::function<bool(char)> &ok) {
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from), s.end(), ok);
}

bool lowerOrDigit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// [a-z0-9][a-z0-9-]{0,max-1}: host, link, stripe and endpoint names.
bool isValidName(const std::string &name, std::size_t max) {
  return !name.empty() && name.size() <= max && lowerOrDigit(name[0]) &&
         allOf(name, 1, [](char c) { return lowerOrDigit(c) || c == '-'; });
}

bool isValidOverlayName(const std::string &name) {
  return !name.empty() && name.size() <= 12 && name[0] >= 'a' && name[0] <= 'z' &&
         allOf(name, 1, [](char c) { return lowerOrDigit(c) || c == '-'; });
}

bool isValidImageName(const std::string &name) {
  return !name.empty() && name.size() <= 64 && lowerOrDigit(name[0]) &&
         allOf(name, 1, [](char c) { return lowerOrDigit(c) || c == '.' || c == '_' || c == '-'; });
}

bool isValidNetnsName(const std::string &name) {
  // "." and ".." would name directories, not namespaces, under /run/netns.
  return !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
         allOf(name, 0, [](char c) {
           return lowerOrDigit(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
         });
}

bool isValidOsrdKey(const std::string &key) {
  return !key.empty() && key.size() <= 32 && key[0] >= 'a' && key[0] <= 'z' &&
         allOf(key, 1, [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
}

std::optional<std::uint32_t> parseIpv4(const std::string &text) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return std::nullopt;
  }
  return ntohl(addr.s_addr);
}

// A decimal integer without sign or leading zeros, and the rest of the text.
std::optional<std::pair<std::uint64_t, std::string>> splitNumber(const std::string &text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  if (digits == 0 || (digits > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits) {
    return std::nullopt; // too large
  }
  return std::make_pair(value, text.substr(digits));
}

// value * factor, or nullopt on overflow.
std::optional<std::uint64_t> scaled(std::uint64_t value, std::uint64_t factor) {
  if (value > UINT64_MAX / factor) {
    return std::nullopt;
  }
  return value * factor;
}

std::optional<std::uint64_t> parseWithUnit(const std::string &text,
                                           const std::map<std::string, std::uint64_t> &units) {
  const auto number = splitNumber(text);
  if (!number) {
    return std::nullopt;
  }
  const auto unit = units.find(number->second);
  if (unit == units.end()) {
    return std::nullopt;
  }
  return scaled(number->first, unit->second);
}

// 0..100 as "0.5" or "0.5%".
std::optional<double> parsePercent(std::string text) {
  if (!text.empty() && text.back() == '%') {
    text.pop_back();
  }
  const auto dot = text.find('.');
  const std::string whole = text.substr(0, dot);
  const std::string fraction = dot == std::string::npos ? "0" : text.substr(dot + 1);
  const auto digitsOnly = [](const std::string &s) {
    return !s.empty() && s.size() <= 20 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digitsOnly(whole) || !digitsOnly(fraction)) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

constexpr std::uint64_t kUsPerS = 1000 * 1000;

const std::map<std::string, std::uint64_t> kRateUnits = {
    {"", 1}, {"k", 1000}, {"K", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000}};
const std::map<std::string, std::uint64_t> kDelayUnits = {{"us", 1}, {"ms", 1000}, {"s", kUsPerS}};
const std::map<std::string, std::uint64_t> kTimeUnits = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}};
const std::map<std::string, std::uint64_t> kSizeUnits = {
    {"M", 1}, {"MiB", 1}, {"G", 1024}, {"GiB", 1024}};

// One key of a mapping, in file order.
struct Entry {
  std::string key;
  YAML::Node keyNode;
  YAML::Node value;
};

struct Located {
  Mark mark;
  std::size_t order;
  std::string message;
};

class Parser {
public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Topology parse(const YAML::Node &root) {
    Topology topo;
    topo.file = file_;
    if (!root.IsMap()) {
      error(root, "a topology must be a mapping, not " + typeName(root));
      return topo;
    }
    const auto entries = mapping(root, "",
                                 {"overlay", "image", "addressing", "hosts", "routers", "links",
                                  "endpoints", "stripes", "events"});
    const auto get = [&](const std::string &key) -> const Entry * {
      for (const auto &e : entries) {
        if (e.key == key) {
          return &e;
        }
      }
      return nullptr;
    };
    if (const auto *e = get("overlay")) {
      if (const auto v = scalar(e->value, "", "overlay")) {
        if (isValidOverlayName(*v)) {
          topo.overlay = *v;
        } else {
          error(e->value,
                "invalid overlay name " + quote(*v) + ": [a-z][a-z0-9-], at most 12 characters");
        }
      }
    } else {
      error(root, "missing key 'overlay'");
    }
    if (const auto *e = get("image")) {
      if (const auto v = scalar(e->value, "", "image")) {
        if (isValidImageName(*v)) {
          topo.image = *v;
        } else {
          error(e->value,
                "invalid image name " + quote(*v) + ": [a-z0-9][a-z0-9._-], at most 64 characters");
        }
      }
    }
    // 0: the addressing is wrong, so there is nothing to count against.
    unsigned prefixLength = 16;
    YAML::Node addressingNode = root;
    if (const auto *e = get("addressing")) {
      addressingNode = e->value;
      const auto v = scalar(e->value, "", "addressing");
      prefixLength = v ? parseAddressing(e->value, *v) : 0;
      if (prefixLength != 0) {
        topo.addressing = *v;
      }
    }
    if (const auto *e = get("hosts")) {
      parseHosts(topo, e->value);
    } else {
      topo.hosts["local"] = TopologyHost{"local", "qemu:///system", std::nullopt, "", Mark{}};
    }
    if (const auto *e = get("routers")) {
      parseRouters(topo, e->value);
    } else {
      error(root, "missing key 'routers'");
    }
    // Indexed once the vectors stop growing: a file may hold thousands.
    for (const auto &router : topo.routers) {
      routerByName_.emplace(router.name, &router);
    }
    if (const auto *e = get("links")) {
      parseLinks(topo, e->value);
    }
    for (const auto &link : topo.links) {
      linkByName_.emplace(link.name, &link);
    }
    if (const auto *e = get("endpoints")) {
      parseEndpoints(topo, e->value);
    }
    if (const auto *e = get("stripes")) {
      parseStripes(topo, e->value);
    }
    if (const auto *e = get("events")) {
      parseEvents(topo, e->value);
    }
    if (prefixLength != 0) {
      const std::size_t available = std::size_t{1} << (24 - prefixLength);
      const std::size_t needed = topo.links.size() + topo.endpoints.size();
      if (needed > available) {
        error(addressingNode, "addressing " + quote(topo.addressing) + " holds " +
                                  std::to_string(available) + " /24 subnets but " +
                                  std::to_string(needed) + " are needed (one per link and " +
                                  "per endpoint)");
      }
    }
    return topo;
  }

  std::vector<std::string> errors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Located &a, const Located &b) {
      return std::tie(a.mark.line, a.mark.column) < std::tie(b.mark.line, b.mark.column);
    });
    std::vector<std::string> lines;
    lines.reserve(errors_.size());
    for (const auto &e : errors_) {
      lines.push_back(file_ + ":" + std::to_string(e.mark.line) + ":" +
                      std::to_string(e.mark.column) + ": " + e.message);
    }
    return lines;
  }

private:
  void error(const YAML::Node &node, const std::string &message) {
    errors_.push_back(Located{markOf(node), errors_.size(), message});
  }

  // "what: " as a message prefix; empty at the top level.
  static std::string prefix(const std::string &what) { return what.empty() ? "" : what + ": "; }

  // The entries of a mapping, each key once; reports wrong types, duplicates
  // and (unless `allowed` is empty) unknown keys. `what` names the object,
  // e.g. "link 'a-b'"; `member` names a collection's members (routers, ...).
  std::vector<Entry> mapping(const YAML::Node &node, const std::string &what,
                             const std::set<std::string> &allowed, const std::string &member = "") {
    std::vector<Entry> entries;
    if (!node.IsMap()) {
      error(node,
            (what.empty() ? "a topology" : what) + " must be a mapping, not " + typeName(node));
      return entries;
    }
    std::map<std::string, Mark> seen;
    for (const auto &pair : node) {
      if (!pair.first.IsScalar()) {
        error(pair.first, (what.empty() ? "" : what + ": ") + "keys must be scalars, not " +
                              typeName(pair.first));
        continue;
      }
      const std::string key = pair.first.Scalar();
      const auto [it, fresh] = seen.emplace(key, markOf(pair.first));
      if (!fresh) {
        // yaml-cpp keeps both and lookups see only the first: refuse.
        const std::string first = " (first at line " + std::to_string(it->second.line) + ")";
        error(pair.first, member.empty() ? "duplicate key " + quote(key) +
                                               (what.empty() ? "" : " in " + what) + first
                                         : "duplicate " + member + " " + quote(key) + first);
        continue;
      }
      if (!allowed.empty() && allowed.count(key) == 0) {
        error(pair.first, "unknown key " + quote(key) + (what.empty() ? "" : " in " + what));
        continue;
      }
      entries.push_back(Entry{key, pair.first, pair.second});
    }
    return entries;
  }

  std::optional<std::string> scalar(const YAML::Node &node, const std::string &what,
                                    const std::string &key) {
    if (node.IsNull()) {
      error(node, prefix(what) + "'" + key + "' has no value");
      return std::nullopt;
    }
    if (!node.IsScalar()) {
      error(node, prefix(what) + "'" + key + "' must be a scalar, not " + typeName(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  // An integer in [min, max].
  std::optional<std::uint64_t> integer(const YAML::Node &node, const std::string &what,
                                       const std::string &key, std::uint64_t min,
                                       std::uint64_t max) {
    const auto text = scalar(node, what, key);
    if (!text) {
      return std::nullopt;
    }
    const auto number = splitNumber(*text);
    if (!number || !number->second.empty()) {
      error(node, prefix(what) + key + " " + quote(*text) + " is not a whole number");
      return std::nullopt;
    }
    if (number->first < min || number->first > max) {
      error(node, prefix(what) + key + " " + quote(*text) + " is out of range " +
                      std::to_string(min) + ".." + std::to_string(max));
      return std::nullopt;
    }
    return number->first;
  }

  // One of `choices`.
  std::optional<std::string> choice(const YAML::Node &node, const std::string &what,
                                    const std::string &key,
                                    const std::vector<std::string> &choices) {
    const auto text = scalar(node, what, key);
    if (!text) {
      return std::nullopt;
    }
    if (std::find(choices.begin(), choices.end(), *text) != choices.end()) {
      return text;
    }
    std::string list;
    for (const auto &c : choices) {
      list += (list.empty() ? "" : ", ") + c;
    }
    error(node, prefix(what) + key + " " + quote(*text) + " is not one of " + list);
    return std::nullopt;
  }

  // The prefix length, or 0 (reported) when `text` is no usable prefix.
  unsigned parseAddressing(const YAML::Node &node, const std::string &text) {
    const auto slash = text.find('/');
    const auto address = parseIpv4(text.substr(0, slash));
    const auto length =
        slash == std::string::npos ? std::nullopt : splitNumber(text.substr(slash + 1));
    if (!address || !length || !length->second.empty()) {
      error(node, "addressing " + quote(text) + " is not an IPv4 prefix (e.g. 10.200.0.0/16)");
      return 0;
    }
    if (length->first < 8 || length->first > 23) {
      error(node, "addressing " + quote(text) + ": the prefix length must be 8..23");
      return 0;
    }
    const auto bits = static_cast<unsigned>(length->first);
    if ((*address & (0xffffffffu >> bits)) != 0) {
      error(node, "addressing " + quote(text) + " has host bits set");
      return 0;
    }
    return bits;
  }

  void parseHosts(Topology &topo, const YAML::Node &node) {
    hostsBroken_ = !node.IsMap();
    const auto hosts = mapping(node, "hosts", {}, "host");
    if (node.IsMap() && hosts.empty() && node.size() == 0) {
      error(node, "hosts: at least one host is needed (or leave 'hosts' out)");
    }
    for (const auto &h : hosts) {
      const std::string what = "host " + quote(h.key);
      if (!isValidName(h.key, 32)) {
        error(h.keyNode, what + ": invalid name: [a-z0-9][a-z0-9-], at most 32 characters");
        continue;
      }
      TopologyHost host;
      host.name = h.key;
      host.mark = markOf(h.keyNode);
      bool hasUri = false;
      for (const auto &e : mapping(h.value, what, {"uri", "underlay", "netns"})) {
        const auto v = scalar(e.value, what, e.key);
        if (!v) {
          continue;
        }
        if (e.key == "uri") {
          hasUri = true;
          if (v->find("://") == std::string::npos) {
            error(e.value,
                  what + ": uri " + quote(*v) + " is not a libvirt URI (e.g. " + "qemu:///system)");
          }
          host.uri = *v;
        } else if (e.key == "underlay") {
          if (parseIpv4(*v)) {
            host.underlay = *v;
          } else {
            error(e.value, what + ": underlay " + quote(*v) + " is not an IPv4 address");
          }
        } else if (isValidNetnsName(*v)) {
          host.netns = *v;
        } else {
          error(e.value, what + ": netns " + quote(*v) +
                             " is not a namespace name: [A-Za-z0-9_.-], at most 64 characters");
        }
      }
      if (!hasUri && h.value.IsMap()) {
        error(h.value, what + ": missing key 'uri'");
      }
      topo.hosts[host.name] = std::move(host);
    }
  }

  void parseRouters(Topology &topo, const YAML::Node &node) {
    const auto routers = mapping(node, "routers", {}, "router");
    if (node.IsMap() && node.size() == 0) {
      error(node, "routers: at least one router is needed");
    }
    for (const auto &r : routers) {
      const std::string what = "router " + quote(r.key);
      if (!isValidRouterName(r.key)) {
        error(r.keyNode, what + ": invalid name: [a-z0-9][a-z0-9-], at most 32 characters");
        continue;
      }
      TopologyRouter router;
      router.name = r.key;
      router.mark = markOf(r.keyNode);
      bool hasHost = false;
      // "name:" alone is a router with every default.
      const auto entries = r.value.IsNull()
                               ? std::vector<Entry>{}
                               : mapping(r.value, what, {"host", "role", "memory", "cpus", "osrd"});
      for (const auto &e : entries) {
        if (e.key == "host") {
          hasHost = true;
          if (const auto v = scalar(e.value, what, e.key)) {
            // With no usable hosts section, every host would be unknown.
            if (topo.hosts.count(*v) == 0 && !hostsBroken_) {
              error(e.value, what + ": unknown host " + quote(*v));
            }
            router.host = *v;
          }
        } else if (e.key == "role") {
          if (const auto v =
                  choice(e.value, what, "role", {"ingress", "relay", "egress", "router"})) {
            router.role = *v;
          }
        } else if (e.key == "memory") {
          if (const auto v = scalar(e.value, what, e.key)) {
            const auto mib = parseWithUnit(*v, kSizeUnits);
            if (!mib) {
              error(e.value, what + ": memory " + quote(*v) + " is not a size (e.g. 128M, 1G)");
            } else if (*mib < 64 || *mib > 16 * 1024) {
              error(e.value, what + ": memory " + quote(*v) + " is out of range 64M..16G");
            } else {
              router.memoryMiB = *mib;
            }
          }
        } else if (e.key == "cpus") {
          if (const auto v = integer(e.value, what, "cpus", 1, 16)) {
            router.cpus = static_cast<unsigned>(*v);
          }
        } else {
          parseOsrd(router, what, e.value);
        }
      }
      if (!hasHost && (r.value.IsMap() || r.value.IsNull())) {
        if (topo.hosts.size() == 1) {
          router.host = topo.hosts.begin()->first;
        } else if (topo.hosts.size() > 1) {
          error(r.value, what + ": missing key 'host' (the topology has " +
                             std::to_string(topo.hosts.size()) + " hosts)");
        }
      }
      topo.routers.push_back(std::move(router));
    }
  }

  void parseOsrd(TopologyRouter &router, const std::string &what, const YAML::Node &node) {
    const std::string osrdWhat = what + " osrd";
    for (const auto &e : mapping(node, osrdWhat, {})) {
      if (!isValidOsrdKey(e.key)) {
        error(e.keyNode, osrdWhat + ": invalid option name " + quote(e.key) +
                             ": [a-z][a-z-], at most 32 characters");
        continue;
      }
      const auto v = scalar(e.value, osrdWhat, e.key);
      if (!v) {
        continue;
      }
      // osrd's options travel as "key=value" lines joined by commas.
      if (v->find_first_of(",\n\r") != std::string::npos) {
        error(e.value,
              osrdWhat + ": " + e.key + " " + quote(*v) + " may not contain commas or line breaks");
        continue;
      }
      router.osrd[e.key] = *v;
    }
  }

  std::optional<std::uint64_t> rate(const YAML::Node &node, const std::string &what) {
    const auto v = scalar(node, what, "rate");
    if (!v) {
      return std::nullopt;
    }
    const auto bps = parseWithUnit(*v, kRateUnits);
    if (!bps) {
      error(node, what + ": rate " + quote(*v) +
                      " is not a rate (bit/s, with an optional k, M or G suffix: 8M)");
      return std::nullopt;
    }
    if (*bps < 1000 || *bps > 10ULL * 1000 * 1000 * 1000) {
      error(node, what + ": rate " + quote(*v) + " is out of range 1k..10G");
      return std::nullopt;
    }
    return bps;
  }

  std::optional<std::uint32_t> delay(const YAML::Node &node, const std::string &what,
                                     const std::string &key) {
    const auto v = scalar(node, what, key);
    if (!v) {
      return std::nullopt;
    }
    const auto us = parseWithUnit(*v, kDelayUnits);
    if (!us) {
      error(node, what + ": " + key + " " + quote(*v) + " is not a duration (e.g. 5ms, 250us, 1s)");
      return std::nullopt;
    }
    if (*us > 10 * kUsPerS) {
      error(node, what + ": " + key + " " + quote(*v) + " is out of range 0..10s");
      return std::nullopt;
    }
    return static_cast<std::uint32_t>(*us);
  }

  std::optional<double> loss(const YAML::Node &node, const std::string &what) {
    const auto v = scalar(node, what, "loss");
    if (!v) {
      return std::nullopt;
    }
    const auto percent = parsePercent(*v);
    if (!percent) {
      error(node, what + ": loss " + quote(*v) + " is not a percentage (e.g. 0.5 or 0.5%)");
      return std::nullopt;
    }
    if (*percent > 100) {
      error(node, what + ": loss " + quote(*v) + " is out of range 0..100%");
      return std::nullopt;
    }
    return percent;
  }

  // rate, delay, jitter, loss of a link or an event; true if `key` was one.
  bool shapeKey(LinkShape &shape, const Entry &e, const std::string &what,
                std::optional<YAML::Node> &jitterNode) {
    if (e.key == "rate") {
      shape.rateBps = rate(e.value, what);
    } else if (e.key == "delay") {
      shape.delayUs = delay(e.value, what, "delay");
    } else if (e.key == "jitter") {
      jitterNode = e.value;
      shape.jitterUs = delay(e.value, what, "jitter");
    } else if (e.key == "loss") {
      shape.lossPercent = loss(e.value, what);
    } else {
      return false;
    }
    return true;
  }

  const TopologyRouter *knownRouter(const YAML::Node &node, const std::string &what,
                                    const std::string &key) {
    const auto v = scalar(node, what, key);
    if (!v) {
      return nullptr;
    }
    const auto it = routerByName_.find(*v);
    if (it == routerByName_.end()) {
      error(node, what + ": unknown router " + quote(*v));
      return nullptr;
    }
    return it->second;
  }

  // What a link's messages call it: its name, else the one its routers give
  // it, else its place in the list.
  static std::string linkLabel(const YAML::Node &item, std::size_t index) {
    std::vector<std::string> ends;
    for (const auto &pair : item) {
      const std::string key = pair.first.IsScalar() ? pair.first.Scalar() : "";
      if (key == "name" && pair.second.IsScalar()) {
        return pair.second.Scalar();
      }
      if (key == "between" && pair.second.IsSequence() && ends.empty()) {
        for (const auto &end : pair.second) {
          ends.push_back(end.IsScalar() ? end.Scalar() : "");
        }
      }
    }
    if (ends.size() == 2 && !ends[0].empty() && !ends[1].empty()) {
      return ends[0] + "-" + ends[1];
    }
    return "#" + std::to_string(index);
  }

  void parseLinks(Topology &topo, const YAML::Node &node) {
    if (!node.IsSequence()) {
      error(node, "links must be a sequence, not " + typeName(node));
      return;
    }
    std::map<std::string, int> lineOfName;
    std::map<std::pair<std::string, std::string>, std::string> byPair;
    std::size_t index = 0;
    for (const auto &item : node) {
      ++index;
      if (!item.IsMap()) {
        error(item, "link #" + std::to_string(index) + " must be a mapping, not " + typeName(item));
        continue;
      }
      TopologyLink link;
      link.mark = markOf(item);
      const std::string label = linkLabel(item, index);
      const std::string what = "link " + (label[0] == '#' ? label : quote(label));
      const TopologyRouter *ends[2] = {nullptr, nullptr};
      bool hasBetween = false;
      bool named = false;
      std::optional<YAML::Node> jitterNode;
      for (const auto &e : mapping(item, what, {})) {
        if (shapeKey(link.shape, e, what, jitterNode)) {
          continue;
        }
        if (e.key == "between") {
          hasBetween = true;
          parseBetween(link, ends, e.value, what);
        } else if (e.key == "name") {
          if (const auto v = scalar(e.value, what, "name")) {
            named = true;
            link.name = *v;
            if (!isValidName(*v, 32)) {
              error(e.value, what + ": invalid name: [a-z0-9][a-z0-9-], at most 32 characters");
            }
            checkUniqueName(lineOfName, link.name, e.value, what);
          }
        } else if (e.key == "mtu") {
          if (const auto v = integer(e.value, what, "mtu", 576, 9000)) {
            link.mtu = static_cast<unsigned>(*v);
          }
        } else {
          error(e.keyNode, "unknown key " + quote(e.key) + " in " + what);
        }
      }
      if (!hasBetween) {
        error(item, what + ": missing key 'between'");
      }
      if (!named && !link.a.empty() && !link.b.empty()) {
        link.name = link.a + "-" + link.b;
        if (!isValidName(link.name, 32)) {
          error(item, what + ": the name made of its routers is longer than 32 characters: set " +
                          "'name'");
        }
        checkUniqueName(lineOfName, link.name, item, what);
      }
      if (jitterNode && link.shape.jitterUs && !link.shape.delayUs) {
        error(*jitterNode, what + ": jitter needs a delay");
      }
      if (ends[0] != nullptr && ends[1] != nullptr && ends[0] != ends[1]) {
        const auto [it, fresh] = byPair.emplace(std::minmax(link.a, link.b), link.name);
        if (!fresh) {
          error(item, what + ": routers " + quote(link.a) + " and " + quote(link.b) +
                          " are already joined by link " + quote(it->second));
        }
        checkUnderlay(topo, *ends[0], *ends[1], item, what);
      }
      topo.links.push_back(std::move(link));
    }
  }

  void parseBetween(TopologyLink &link, const TopologyRouter *(&ends)[2], const YAML::Node &node,
                    const std::string &what) {
    if (!node.IsSequence() || node.size() != 2) {
      error(node, what + ": between must list exactly two routers");
      return;
    }
    std::size_t i = 0;
    for (const auto &end : node) {
      ends[i] = knownRouter(end, what, "between");
      if (end.IsScalar()) {
        (i == 0 ? link.a : link.b) = end.Scalar();
        if (i == 1 && link.a == link.b) {
          error(end, what + ": joins router " + quote(link.a) + " to itself");
        }
      }
      ++i;
    }
  }

  void checkUniqueName(std::map<std::string, int> &lineOfName, const std::string &name,
                       const YAML::Node &node, const std::string &what) {
    const auto [it, fresh] = lineOfName.emplace(name, markOf(node).line);
    if (!fresh) {
      error(node, what + ": another link has this name (line " + std::to_string(it->second) + ")");
    }
  }

  void checkUnderlay(const Topology &topo, const TopologyRouter &a, const TopologyRouter &b,
                     const YAML::Node &node, const std::string &what) {
    if (a.host == b.host) {
      return;
    }
    for (const auto *router : {&a, &b}) {
      const auto host = topo.hosts.find(router->host);
      if (host != topo.hosts.end() && !host->second.underlay) {
        error(node, what + ": joins hosts " + quote(a.host) + " and " + quote(b.host) +
                        ", but host " + quote(router->host) + " has no underlay address");
      }
    }
  }

  void parseEndpoints(Topology &topo, const YAML::Node &node) {
    for (const auto &ep : mapping(node, "endpoints", {}, "endpoint")) {
      const std::string what = "endpoint " + quote(ep.key);
      if (!isValidName(ep.key, 16)) {
        error(ep.keyNode, what + ": invalid name: [a-z0-9][a-z0-9-], at most 16 characters");
        continue;
      }
      if (routerByName_.count(ep.key) != 0) {
        error(ep.keyNode, what + ": the name is taken by a router");
      }
      TopologyEndpoint endpoint;
      endpoint.name = ep.key;
      endpoint.mark = markOf(ep.keyNode);
      bool hasRouter = false;
      for (const auto &e : mapping(ep.value, what, {"router"})) {
        hasRouter = true;
        if (knownRouter(e.value, what, "router") != nullptr) {
          endpoint.router = e.value.Scalar();
        }
      }
      if (!hasRouter && ep.value.IsMap()) {
        error(ep.value, what + ": missing key 'router'");
      }
      topo.endpoints.push_back(std::move(endpoint));
    }
  }

  void parseStripes(Topology &topo, const YAML::Node &node) {
    for (const auto &s : mapping(node, "stripes", {}, "stripe")) {
      const std::string what = "stripe " + quote(s.key);
      if (!isValidName(s.key, 32)) {
        error(s.keyNode, what + ": invalid name: [a-z0-9][a-z0-9-], at most 32 characters");
        continue;
      }
      TopologyStripe stripe;
      stripe.name = s.key;
      stripe.mark = markOf(s.keyNode);
      const auto entries = mapping(
          s.value, what, {"ingress", "egress", "relays", "k", "scheduler", "buffer", "reverse"});
      const auto get = [&](const std::string &key) -> const Entry * {
        for (const auto &e : entries) {
          if (e.key == key) {
            return &e;
          }
        }
        return nullptr;
      };
      const auto missing = [&](const std::string &key) {
        if (s.value.IsMap()) {
          error(s.value, what + ": missing key '" + key + "'");
        }
      };
      for (const auto &[key, field] :
           {std::pair{"ingress", &stripe.ingress}, std::pair{"egress", &stripe.egress}}) {
        if (const auto *e = get(key)) {
          if (knownRouter(e->value, what, key) != nullptr) {
            *field = e->value.Scalar();
          }
        } else {
          missing(key);
        }
      }
      if (const auto *e = get("egress");
          e != nullptr && !stripe.ingress.empty() && stripe.ingress == stripe.egress) {
        error(e->value, what + ": the egress is the ingress " + quote(stripe.ingress));
      }
      const auto *relays = get("relays");
      if (relays != nullptr) {
        parseRelays(stripe, *relays, what);
      } else {
        missing("relays");
      }
      if (const auto *e = get("k")) {
        if (const auto k = integer(e->value, what, "k", 1, 16)) {
          stripe.k = static_cast<unsigned>(*k);
          if (!stripe.askOracle && !stripe.relays.empty() && *k > stripe.relays.size()) {
            error(e->value, what + ": k = " + std::to_string(*k) + " but only " +
                                std::to_string(stripe.relays.size()) + " relays");
          }
        }
      } else if (stripe.askOracle) {
        error(relays->value, what + ": k is required when the oracle chooses the relays");
      } else {
        stripe.k = static_cast<unsigned>(stripe.relays.size());
      }
      if (const auto *e = get("scheduler")) {
        if (const auto v =
                choice(e->value, what, "scheduler", {"adaptive", "equal", "weighted", "delay"})) {
          stripe.scheduler = *v;
        }
      }
      if (const auto *e = get("buffer")) {
        if (e->value.IsScalar() && e->value.Scalar() == "auto") {
          stripe.buffer.reset();
        } else if (const auto v = integer(e->value, what, "buffer", 2, 65536)) {
          stripe.buffer = static_cast<std::size_t>(*v);
        }
      }
      if (const auto *e = get("reverse")) {
        if (const auto v = choice(e->value, what, "reverse", {"true", "false"})) {
          stripe.reverse = *v == "true";
        }
      }
      topo.stripes.push_back(std::move(stripe));
    }
  }

  void parseRelays(TopologyStripe &stripe, const Entry &e, const std::string &what) {
    if (e.value.IsScalar() && e.value.Scalar() == "oracle") {
      stripe.askOracle = true;
      return;
    }
    if (!e.value.IsSequence()) {
      error(e.value,
            what + ": relays must be a list of routers or 'oracle', not " + typeName(e.value));
      return;
    }
    if (e.value.size() < 1 || e.value.size() > 16) {
      error(e.value, what + ": relays must list 1..16 routers");
      return;
    }
    bool ok = true;
    for (const auto &relay : e.value) {
      if (knownRouter(relay, what, "relays") == nullptr) {
        ok = false;
        continue;
      }
      const std::string name = relay.Scalar();
      if (name == stripe.ingress || name == stripe.egress) {
        error(relay, what + ": relay " + quote(name) + " is the stripe's " +
                         (name == stripe.ingress ? "ingress" : "egress"));
        ok = false;
      } else if (std::find(stripe.relays.begin(), stripe.relays.end(), name) !=
                 stripe.relays.end()) {
        error(relay, what + ": relay " + quote(name) + " is listed twice");
        ok = false;
      }
      stripe.relays.push_back(name);
    }
    if (!ok) {
      stripe.relays.clear();
    }
  }

  void parseEvents(Topology &topo, const YAML::Node &node) {
    if (!node.IsSequence()) {
      error(node, "events must be a sequence, not " + typeName(node));
      return;
    }
    std::size_t index = 0;
    for (const auto &item : node) {
      ++index;
      const std::string what = "event #" + std::to_string(index);
      TopologyEvent event;
      event.mark = markOf(item);
      const auto entries =
          mapping(item, what, {"at", "link", "state", "rate", "delay", "jitter", "loss"});
      if (!item.IsMap()) {
        continue;
      }
      bool hasAt = false;
      bool hasLink = false;
      bool setsSomething = false;
      const TopologyLink *link = nullptr;
      std::optional<YAML::Node> jitterNode;
      for (const auto &e : entries) {
        if (shapeKey(event.shape, e, what, jitterNode)) {
          setsSomething = true;
        } else if (e.key == "at") {
          hasAt = true;
          if (const auto v = scalar(e.value, what, "at")) {
            const auto ms = parseWithUnit(*v, kTimeUnits);
            if (!ms) {
              error(e.value, what + ": at " + quote(*v) + " is not a time (e.g. 30s, 1500ms, 2m)");
            } else if (*ms > 24ULL * 3600 * 1000) {
              error(e.value, what + ": at " + quote(*v) + " is out of range 0..24h");
            } else {
              event.atMs = *ms;
            }
          }
        } else if (e.key == "link") {
          hasLink = true;
          if (const auto v = scalar(e.value, what, "link")) {
            event.link = *v;
            if (const auto it = linkByName_.find(*v); it != linkByName_.end()) {
              link = it->second;
            } else {
              error(e.value, what + ": unknown link " + quote(*v));
            }
          }
        } else if (e.key == "state") {
          setsSomething = true;
          if (const auto v = choice(e.value, what, "state", {"up", "down"})) {
            event.up = *v == "up";
          }
        }
      }
      if (!hasAt) {
        error(item, what + ": missing key 'at'");
      }
      if (!hasLink) {
        error(item, what + ": missing key 'link'");
      }
      if (!setsSomething) {
        error(item, what + ": sets nothing (state, rate, delay, jitter or loss)");
      }
      if (jitterNode && event.shape.jitterUs && !event.shape.delayUs &&
          (link == nullptr || !link->shape.delayUs)) {
        error(*jitterNode, what + ": jitter needs a delay (here or on the link)");
      }
      topo.events.push_back(std::move(event));
    }
    std::stable_sort(
        topo.events.begin(), topo.events.end(),
        [](const TopologyEvent &a, const TopologyEvent &b) { return a.atMs < b.atMs; });
  }

  std::string file_;
  std::vector<Located> errors_;
  bool hostsBroken_ = false;
  std::map<std::string, const TopologyRouter *> routerByName_;
  std::map<std::string, const TopologyLink *> linkByName_;
};

} // namespace

const TopologyRouter *Topology::router(const std::string &name) const {
  const auto it = std::find_if(routers.begin(), routers.end(),
                               [&](const TopologyRouter &r) { return r.name == name; });
  return it == routers.end() ? nullptr : &*it;
}

const TopologyLink *Topology::link(const std::string &name) const {
  const auto it = std::find_if(links.begin(), links.end(),
                               [&](const TopologyLink &l) { return l.name == name; });
  return it == links.end() ? nullptr : &*it;
}

namespace {

// Records where documents start and ignores their content: enough to tell
// whether a file holds a second document.
class DocumentStarts : public YAML::EventHandler {
public:
  std::vector<YAML::Mark> marks;

  void OnDocumentStart(const YAML::Mark &mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark &, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t,
                const std::string &) override {}
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::string joinLines(const std::vector<std::string> &lines) {
  std::string out;
  for (const auto &line : lines) {
    out += (out.empty() ? "" : "\n") + line;
  }
  return out;
}

} // namespace

TopologyError::TopologyError(std::vector<std::string> errors)
    : std::runtime_error(joinLines(errors)), errors_(std::move(errors)) {}

Topology parseTopology(const std::string &text, const std::string &file) {
  if (text.size() > kMaxTopologyBytes) {
    throw TopologyError(
        {file + ":1:1: topology is larger than 1 MiB (" + std::to_string(text.size()) + " bytes)"});
  }
  YAML::Node root;
  DocumentStarts starts;
  try {
    root = YAML::Load(text);
    // Not YAML::LoadAll: on some malformed input yaml-cpp 0.7 finds an
    // endless series of empty documents (found by topology_fuzz). Two steps
    // of the parser tell whether a second document starts.
    std::istringstream in(text);
    YAML::Parser documents(in);
    if (documents.HandleNextDocument(starts)) {
      documents.HandleNextDocument(starts);
    }
  } catch (const YAML::Exception &e) {
    // e.msg is yaml-cpp's message without its own position prefix; it may
    // end with the offending character, a line break among them.
    throw TopologyError({file + ":" + std::to_string(std::max(e.mark.line, 0) + 1) + ":" +
                         std::to_string(std::max(e.mark.column, 0) + 1) +
                         ": invalid YAML: " + printable(e.msg)});
  }
  if (starts.marks.size() > 1) {
    const YAML::Mark &m = starts.marks[1];
    throw TopologyError({file + ":" + std::to_string(std::max(m.line, 0) + 1) + ":" +
                         std::to_string(std::max(m.column, 0) + 1) +
                         ": a topology file holds one YAML document"});
  }
  Parser parser(file);
  Topology topo = parser.parse(root);
  if (auto errors = parser.errors(); !errors.empty()) {
    throw TopologyError(std::move(errors));
  }
  return topo;
}

Topology loadTopology(const std::string &path) {
  const auto fail = [&](const std::string &why) {
    return TopologyError({"cannot read topology " + quote(path) + ": " + why});
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw fail(std::strerror(errno));
  }
  // One byte more than allowed, so parseTopology sees an oversized file as one.
  std::string text;
  char buffer[65536];
  while (text.size() <= kMaxTopologyBytes) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      throw fail(std::strerror(saved));
    }
    if (n == 0) {
      break;
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return parseTopology(text, path);
}

} // namespace nvbox

#include "nvbox/hosts.hpp"

#include "nvbox/error.hpp"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace nvbox {

namespace fs = std::filesystem;

namespace {

std::string env(const char *name) {
  const char *value = std::getenv(name);
  return value != nullptr ? value : "";
}

bool isUri(const std::string &text) {
  return text.find("://") != std::string::npos;
}

} // namespace

bool isValidHostName(const std::string &name) noexcept {
  static const std::regex pattern("[a-z0-9][a-z0-9-]{0,31}");
  return std::regex_match(name, pattern);
}

fs::path HostRegistry::defaultFile() {
  if (const std::string file = env("NVBOX_HOSTS"); !file.empty()) {
    return file;
  }
  if (::geteuid() == 0) {
    return "/etc/nvbox/hosts.json";
  }
  if (const std::string xdg = env("XDG_CONFIG_HOME"); !xdg.empty()) {
    return fs::path(xdg) / "nvbox/hosts.json";
  }
  const std::string home = env("HOME");
  if (home.empty()) {
    throw Error("cannot find the hosts file: neither XDG_CONFIG_HOME nor HOME is set",
                "set NVBOX_HOSTS to a file");
  }
  return fs::path(home) / ".config/nvbox/hosts.json";
}

HostRegistry::HostRegistry(fs::path file) : file_(std::move(file)) {
  std::ifstream in(file_);
  if (!in) {
    return; // no file: no registered hosts
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto fail = [&](const std::string &why) {
    throw Error("hosts file '" + file_.string() + "' is not valid: " + why,
                "fix or remove it; 'nvbox host add' writes it");
  };
  const nlohmann::json doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (!doc.is_object() || !doc.contains("hosts") || !doc["hosts"].is_object()) {
    fail("expected {\"hosts\": {NAME: URI, ...}}");
  }
  for (const auto &[name, uri] : doc["hosts"].items()) {
    if (!isValidHostName(name)) {
      fail("host name '" + name + "' is not 1-32 of [a-z0-9-]");
    }
    if (!uri.is_string() || !isUri(uri.get<std::string>())) {
      fail("host '" + name + "' has no libvirt URI");
    }
    hosts_[name] = uri.get<std::string>();
  }
}

std::vector<HostRef> HostRegistry::list() const {
  std::vector<HostRef> out;
  if (hosts_.count(kLocalHostName) == 0U) {
    out.push_back({kLocalHostName, kLocalHostUri});
  }
  for (const auto &[name, uri] : hosts_) {
    out.push_back({name, uri});
  }
  return out;
}

HostRef HostRegistry::resolve(const std::string &nameOrUri) const {
  const std::string name = nameOrUri.empty() ? kLocalHostName : nameOrUri;
  if (const auto it = hosts_.find(name); it != hosts_.end()) {
    return {it->first, it->second};
  }
  if (name == kLocalHostName) {
    return {kLocalHostName, kLocalHostUri};
  }
  if (isUri(name)) {
    return {name, name};
  }
  throw UsageError("unknown host '" + name + "'",
                   "add it with 'nvbox host add " + name +
                       " URI', or give a libvirt URI such as qemu+ssh://root@HOST/system");
}

void HostRegistry::add(const std::string &name, const std::string &uri) {
  if (!isValidHostName(name)) {
    throw UsageError("host name '" + name +
                         "' is not 1-32 of [a-z0-9-] starting with a letter or digit",
                     "choose another name");
  }
  if (!isUri(uri)) {
    throw UsageError("'" + uri + "' is not a libvirt URI",
                     "give one such as qemu+ssh://root@HOST/system");
  }
  if (hosts_.count(name) != 0U) {
    throw UsageError("host '" + name + "' exists already (" + hosts_.at(name) + ")",
                     "remove it first with 'nvbox host rm " + name + "'");
  }
  hosts_[name] = uri;
  save();
}

void HostRegistry::remove(const std::string &name) {
  if (hosts_.erase(name) == 0U) {
    throw UsageError("host '" + name + "' is not registered", "see 'nvbox host list'");
  }
  save();
}

void HostRegistry::save() const {
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  const fs::path tmp = file_.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"hosts", hosts_}}.dump(2) << "\n";
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      throw Error("cannot write hosts file '" + file_.string() + "'",
                  "check that its directory is writable");
    }
  }
  fs::rename(tmp, file_, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot write hosts file '" + file_.string() + "': " + ec.message());
  }
}

HostRef resolveHost(const std::string &nameOrUri) {
  return HostRegistry(HostRegistry::defaultFile()).resolve(nameOrUri);
}

} // namespace nvbox

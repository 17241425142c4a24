// Hosts: names for the libvirt URIs of NV-boxes.
//
// With no configuration there is exactly one host, `local` = qemu:///system.
// `nvbox host add NAME URI` records more in a hosts file (JSON, see
// HostRegistry::defaultFile); a registered `local` overrides the built-in
// one. Anything containing "://" is taken as a libvirt URI as it stands
// (qemu+ssh://…, qemu+tcp://…, qemu+unix:///system?socket=…, test:///default).
//
// Threading: a HostRegistry is a value read from its file; add() and remove()
// rewrite the file atomically (write a temporary file, rename it), so
// concurrent readers see the old or the new list, never half of one.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace nvbox {

struct HostRef {
  std::string name; // "local", a registered name, or the URI itself
  std::string uri;
  bool operator==(const HostRef &) const = default;
};

inline constexpr const char *kLocalHostName = "local";
inline constexpr const char *kLocalHostUri = "qemu:///system";

class HostRegistry {
public:
  // Reads `file`; a missing file is an empty registry. Throws nvbox::Error
  // naming the file when it is not a valid hosts file.
  explicit HostRegistry(std::filesystem::path file);
  // $NVBOX_HOSTS if set; else /etc/nvbox/hosts.json as root; else
  // $XDG_CONFIG_HOME/nvbox/hosts.json or ~/.config/nvbox/hosts.json.
  [[nodiscard]] static std::filesystem::path defaultFile();

  // `local` (built in unless registered) and every registered host, by name.
  [[nodiscard]] std::vector<HostRef> list() const;
  // A registered name, `local`, or a URI. Throws nvbox::UsageError for
  // anything else.
  [[nodiscard]] HostRef resolve(const std::string &nameOrUri) const;
  // Throws nvbox::UsageError for a bad name or URI, or a name taken.
  void add(const std::string &name, const std::string &uri);
  // Throws nvbox::UsageError when the name is not registered.
  void remove(const std::string &name);

  [[nodiscard]] const std::filesystem::path &file() const noexcept { return file_; }

private:
  void save() const;
  std::filesystem::path file_;
  std::map<std::string, std::string> hosts_;
};

// resolve() against the default registry.
[[nodiscard]] HostRef resolveHost(const std::string &nameOrUri);

// [a-z0-9][a-z0-9-]{0,31}
[[nodiscard]] bool isValidHostName(const std::string &name) noexcept;

} // namespace nvbox

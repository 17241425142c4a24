// Network namespaces, named the way iproute2 names them (/run/netns/NAME), so
// that `ip netns exec NAME …` works on what nvbox creates and vice versa.
//
// NetworkNamespace owns one named namespace: the constructor creates it, the
// destructor removes it (links inside it vanish with it). runIn() executes a
// function on a helper thread that has joined the namespace, so the calling
// thread never changes namespace. runInFresh() does the same in a throwaway
// anonymous namespace that disappears when the function returns: that is how
// probes try things without touching the host's own network.
//
// Threading: every function is safe to call from any thread; the work runs on
// a short-lived std::thread because setns/unshare(CLONE_NEWNET) act on the
// calling thread only.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace nvbox::netconfig {

class NetworkNamespace {
public:
  // Creates /run/netns/NAME. Throws nvbox::Error if it exists or cannot be made.
  explicit NetworkNamespace(std::string name);
  ~NetworkNamespace();

  NetworkNamespace(const NetworkNamespace &) = delete;
  NetworkNamespace &operator=(const NetworkNamespace &) = delete;
  NetworkNamespace(NetworkNamespace &&other) noexcept;
  NetworkNamespace &operator=(NetworkNamespace &&other) = delete;

  [[nodiscard]] const std::string &name() const noexcept { return name_; }

  // Gives up ownership: the namespace outlives this object.
  void release() noexcept { name_.clear(); }

private:
  std::string name_;
};

// Whether /run/netns/NAME exists.
[[nodiscard]] bool namespaceExists(const std::string &name);

// Removes /run/netns/NAME if present. Returns whether it was there.
bool removeNamespace(const std::string &name);

// Names of all namespaces under /run/netns.
[[nodiscard]] std::vector<std::string> listNamespaces();

// Runs fn inside the named namespace; exceptions from fn are rethrown here.
void runIn(const std::string &name, const std::function<void()> &fn);

// Runs fn inside a new anonymous namespace that dies when fn returns.
void runInFresh(const std::function<void()> &fn);

} // namespace nvbox::netconfig

// BridgeLink: both routers on one host; one bridge, their taps on it.
#include "link_wiring.hpp"

namespace nvbox::links {

void UndoLog::add(std::string what, std::function<void()> step) {
  const std::lock_guard lock(mutex_);
  steps_.emplace_back(std::move(what), std::move(step));
}

std::vector<std::string> UndoLog::created() {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto &step : steps_) {
    out.push_back(step.first);
  }
  return out;
}

std::vector<std::string> UndoLog::rollback() {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> failures;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    try {
      it->second();
    } catch (const std::exception &e) {
      failures.push_back(it->first + ": " + e.what());
    }
  }
  steps_.clear();
  return failures;
}

void UndoLog::clear() {
  const std::lock_guard lock(mutex_);
  steps_.clear();
}

void wireBridge(const std::string &bridge, const std::string &host, HostNetworks &nets,
                UndoLog &undo) {
  netconfig::HostNetwork &net = nets.at(host);
  if (net.ensureBridge(bridge)) {
    undo.add("bridge '" + bridge + "' on host '" + host + "'",
             [&net, bridge] { net.removeLink(bridge); });
  }
}

namespace {

class BridgeLink final : public LinkWiring {
public:
  void wire(const OverlayPlan & /*plan*/, const PlannedLink &link, HostNetworks &nets,
            UndoLog &undo) const override {
    wireBridge(link.a.bridge, link.a.host, nets, undo);
  }
  std::vector<std::string> names(const PlannedLink &link, const std::string &host) const override {
    if (host != link.a.host) {
      return {};
    }
    return {link.a.bridge, link.a.tap, link.b.tap};
  }
};

} // namespace

const LinkWiring &bridgeLink() {
  static const BridgeLink wiring;
  return wiring;
}

} // namespace nvbox::links

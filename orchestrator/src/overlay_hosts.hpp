// The hosts of an overlay plan as deploy and `overlay run` reach them: a
// libvirt connection to every host, all opened before anything is touched,
// and the network of each host whose network nvbox configures from here.
//
// Threading: plain functions.
#pragma once

#include "links/link_wiring.hpp"

#include "nvbox/libvirt.hpp"
#include "nvbox/overlay_plan.hpp"

#include <map>
#include <string>

namespace nvbox {

// Throws nvbox::Error naming every unreachable host: "cannot VERB overlay
// 'NAME': host 'h2': …".
[[nodiscard]] std::map<std::string, virt::Connection> connectAll(const OverlayPlan &plan,
                                                                 const std::string &verb);

[[nodiscard]] netconfig::HostNetwork networkOf(const PlannedHost &host);

// The networks of the plan's hosts that nvbox reaches (PlannedHost::reachable).
[[nodiscard]] links::HostNetworks networksOf(const OverlayPlan &plan);

} // namespace nvbox

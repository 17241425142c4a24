// XmlDocument — read-only XPath queries over XML that libvirt hands back
// (capabilities, domain capabilities, domain definitions).
//
// Parsing never touches the network or external entities; malformed input
// throws nvbox::Error naming `what` the document is.
#pragma once

#include <libxml/tree.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox {

class XmlDocument {
public:
  XmlDocument(const std::string &text, const std::string &what);

  // Text values of every node (element text or attribute value) selected.
  [[nodiscard]] std::vector<std::string> all(const std::string &xpath) const;
  // The first selected value, if any.
  [[nodiscard]] std::optional<std::string> first(const std::string &xpath) const;

private:
  struct Free {
    void operator()(xmlDoc *doc) const noexcept;
  };
  std::unique_ptr<xmlDoc, Free> doc_;
  std::string what_;
};

// Escapes text for XML element content and attribute values (quoted with
// ' or "), for the XML nvbox writes for libvirt.
[[nodiscard]] std::string xmlEscape(std::string_view text);

} // namespace nvbox

#include "nvbox/xml.hpp"

#include "nvbox/error.hpp"

#include <libxml/parser.h>
#include <libxml/xpath.h>

namespace nvbox {
namespace {

using XPathContext = std::unique_ptr<xmlXPathContext, decltype(&xmlXPathFreeContext)>;
using XPathObject = std::unique_ptr<xmlXPathObject, decltype(&xmlXPathFreeObject)>;

} // namespace

void XmlDocument::Free::operator()(xmlDoc *doc) const noexcept {
  xmlFreeDoc(doc);
}

XmlDocument::XmlDocument(const std::string &text, const std::string &what) : what_(what) {
  // XML_PARSE_NONET and no DTD loading: input from a host is not trusted.
  doc_.reset(xmlReadMemory(text.data(), static_cast<int>(text.size()), nullptr, nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc_) {
    throw Error("cannot parse " + what + ": malformed XML");
  }
}

std::vector<std::string> XmlDocument::all(const std::string &xpath) const {
  XPathContext ctx(xmlXPathNewContext(doc_.get()), xmlXPathFreeContext);
  if (!ctx) {
    throw Error("cannot query " + what_ + ": out of memory");
  }
  XPathObject result(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar *>(xpath.c_str()), ctx.get()),
      xmlXPathFreeObject);
  if (!result) {
    throw Error("invalid XPath '" + xpath + "' on " + what_);
  }
  std::vector<std::string> values;
  const xmlNodeSet *nodes = result->nodesetval;
  if (nodes == nullptr) {
    return values;
  }
  for (int i = 0; i < nodes->nodeNr; ++i) {
    xmlChar *content = xmlNodeGetContent(nodes->nodeTab[i]);
    if (content != nullptr) {
      values.emplace_back(reinterpret_cast<const char *>(content));
      xmlFree(content);
    }
  }
  return values;
}

std::optional<std::string> XmlDocument::first(const std::string &xpath) const {
  auto values = all(xpath);
  if (values.empty()) {
    return std::nullopt;
  }
  return std::move(values.front());
}

std::string xmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '\'':
      out += "&apos;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

} // namespace nvbox

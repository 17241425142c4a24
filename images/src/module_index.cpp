#include "nvbox/images/module_index.hpp"

#include "nvbox/error.hpp"

#include <fstream>
#include <sstream>

namespace nvbox::images {
namespace {

std::string readFile(const std::filesystem::path &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error("cannot read '" + path.string() + "'",
                "install the guest kernel package (linux-image-amd64)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool validPath(const std::string &path) {
  return !path.empty() && path.find(".ko") != std::string::npos && path.front() != '/' &&
         path.find("..") == std::string::npos;
}

} // namespace

std::string ModuleIndex::nameOf(const std::string &path) {
  const auto slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  base = base.substr(0, base.find(".ko"));
  for (char &c : base) {
    if (c == '-') {
      c = '_';
    }
  }
  return base;
}

ModuleIndex ModuleIndex::parse(const std::string &depText, const std::string &builtinText,
                               const std::string &source) {
  ModuleIndex index;
  std::istringstream lines(depText);
  std::string line;
  std::size_t lineNo = 0;
  while (std::getline(lines, line)) {
    ++lineNo;
    if (line.empty()) {
      continue;
    }
    const auto colon = line.find(':');
    const std::string path = line.substr(0, colon);
    if (colon == std::string::npos || !validPath(path)) {
      throw Error("malformed line " + std::to_string(lineNo) + " in '" + source + "'",
                  "reinstall the kernel package or run depmod");
    }
    Module module{path, {}};
    std::istringstream deps(line.substr(colon + 1));
    std::string dep;
    while (deps >> dep) {
      if (!validPath(dep)) {
        std::string what = "malformed dependency '" + dep + "'";
        what += " on line " + std::to_string(lineNo) + " in '" + source + "'";
        throw Error(what, "reinstall the kernel package or run depmod");
      }
      module.deps.push_back(nameOf(dep));
    }
    index.modules_[nameOf(path)] = std::move(module);
  }
  std::istringstream builtins(builtinText);
  while (std::getline(builtins, line)) {
    if (!line.empty()) {
      index.builtin_.insert(nameOf(line));
    }
  }
  return index;
}

ModuleIndex ModuleIndex::load(const std::filesystem::path &dir) {
  const auto dep = dir / "modules.dep";
  const auto builtin = dir / "modules.builtin";
  std::error_code ec;
  const std::string builtinText = std::filesystem::exists(builtin, ec) ? readFile(builtin) : "";
  return parse(readFile(dep), builtinText, dep.string());
}

bool ModuleIndex::has(const std::string &name) const {
  return modules_.contains(name) || builtin_.contains(name);
}

bool ModuleIndex::builtin(const std::string &name) const {
  return builtin_.contains(name);
}

void ModuleIndex::visit(const std::string &name, std::set<std::string> &seen,
                        std::set<std::string> &active, std::vector<std::string> &order) const {
  if (seen.contains(name) || builtin_.contains(name)) {
    return;
  }
  const auto it = modules_.find(name);
  if (it == modules_.end()) {
    throw Error("kernel module '" + name + "' is not in modules.dep",
                "use a guest kernel built with it as a module or built in");
  }
  if (!active.insert(name).second) {
    throw Error("kernel module '" + name + "' depends on itself in modules.dep",
                "reinstall the kernel package or run depmod");
  }
  for (const auto &dep : it->second.deps) {
    visit(dep, seen, active, order);
  }
  active.erase(name);
  seen.insert(name);
  order.push_back(it->second.path);
}

std::vector<std::string> ModuleIndex::loadOrder(const std::vector<std::string> &names) const {
  std::vector<std::string> order;
  std::set<std::string> seen;
  std::set<std::string> active;
  for (const auto &name : names) {
    visit(nameOf(name), seen, active, order);
  }
  return order;
}

} // namespace nvbox::images

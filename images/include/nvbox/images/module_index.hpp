// ModuleIndex — a kernel's modules.dep and modules.builtin, answering "which
// module files, in which order, does loading these modules take?".
//
// The image build uses the answer to copy exactly those files into the guest
// initrd and to write the init's insmod order; doctor uses it to tell whether
// the guest kernel package has everything routers need.
//
// Input is a file from disk and may be damaged: parse() rejects malformed
// lines with the line number instead of guessing.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace nvbox::images {

class ModuleIndex {
public:
  // Parses modules.dep text ("path.ko: dep.ko dep.ko") and the list of
  // built-in modules (one path per line); `source` names the file in errors.
  static ModuleIndex parse(const std::string &depText, const std::string &builtinText,
                           const std::string &source);
  // Reads <dir>/modules.dep and <dir>/modules.builtin (the latter optional).
  static ModuleIndex load(const std::filesystem::path &dir);

  // Module name of a path: "kernel/fs/ext4/ext4.ko.xz" -> "ext4"; '-' -> '_'.
  static std::string nameOf(const std::string &path);

  [[nodiscard]] bool has(const std::string &name) const;
  [[nodiscard]] bool builtin(const std::string &name) const;
  // Files to load, dependencies first, each once; built-ins are skipped.
  // Throws nvbox::Error naming the first module that is neither.
  [[nodiscard]] std::vector<std::string> loadOrder(const std::vector<std::string> &names) const;
  [[nodiscard]] std::size_t size() const { return modules_.size(); }

private:
  struct Module {
    std::string path;
    std::vector<std::string> deps; // module names
  };
  void visit(const std::string &name, std::set<std::string> &seen, std::set<std::string> &active,
             std::vector<std::string> &order) const;

  std::map<std::string, Module> modules_;
  std::set<std::string> builtin_;
};

} // namespace nvbox::images

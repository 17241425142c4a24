// `nvbox host add|list|inspect|rm` — the hosts nvbox knows by name
// (nvbox::HostRegistry, the hosts file) and what one of them offers.
//
// add and rm only edit the hosts file: a host may be down when it is
// registered, so add connects only with --check (and then refuses an
// unreachable host, writing nothing). list reads the file and, with --check,
// connects to every host; a host that does not answer is a row saying so,
// never an error. inspect connects to one host and reports its libvirt,
// memory, routers, storage pool and the accelerator that really runs guests.
//
// The host verbs name their host as an argument, so the global --host is
// refused. What the router verbs share with them (connecting with an error
// that names host and URI, the aligned tables) is declared here too.
#pragma once

#include "command.hpp"
#include "format.hpp"
#include "nvbox/error.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/libvirt.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace nvbox::cli {

// Connects to `host`. Throws nvbox::Error "cannot connect to host 'h1'
// (qemu+ssh://root@h1/system): REASON" (the URI once when the host is named
// by its URI).
[[nodiscard]] virt::Connection connectHost(const HostRef &host);
// libvirt's reason alone, from the error connectHost() or
// virt::Connection::open() threw for `host`.
[[nodiscard]] std::string unreachableReason(const Error &error, const HostRef &host);

// What the host verbs share: the refusal of --host and the NAME argument.
class HostCommand : public Command {
protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

  // Adds the positional NAME argument (also --name).
  void addName(boost::program_options::options_description &options,
               boost::program_options::positional_options_description &positional,
               const char *help);
  void requireName() const;
  // The hosts file (HostRegistry::defaultFile(), so $NVBOX_HOSTS if set).
  [[nodiscard]] static HostRegistry registry();

  std::string name_;
};

class HostAddCommand : public HostCommand {
public:
  [[nodiscard]] std::string name() const override { return "host add"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string uri_;
  bool check_ = false;
};

class HostListCommand : public HostCommand {
public:
  [[nodiscard]] std::string name() const override { return "host list"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;

private:
  bool check_ = false;
};

class HostInspectCommand : public HostCommand {
public:
  [[nodiscard]] std::string name() const override { return "host inspect"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  bool noProbe_ = false;
};

class HostRmCommand : public HostCommand {
public:
  [[nodiscard]] std::string name() const override { return "host rm"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
};

} // namespace nvbox::cli

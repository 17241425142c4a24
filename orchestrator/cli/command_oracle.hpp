// `nvbox oracle serve|query|map` — the path oracle (paper 4.1): the daemon
// that collects the OSRs' peer measurements and names the best relays
// (nvbox::OracleServer), and the two read commands that ask it
// (nvbox::OracleClient). docs/oracle.md is the user guide.
//
// Every verb needs the overlay key (--key-file, 64 hex digits, the file
// osrd reads): the oracle answers only authenticated requests. The oracle
// is not a libvirt host, so the global --host is refused.
#pragma once

#include "command.hpp"

#include <cstdint>
#include <string>

namespace nvbox::cli {

class OracleCommand : public Command {
protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
  // --oracle and --key-file (serve has --listen instead of --oracle).
  void addClientOptions(boost::program_options::options_description &options);

  std::string oracle_ = "127.0.0.1:7500";
  std::string keyFile_;
};

class OracleServeCommand : public OracleCommand {
public:
  [[nodiscard]] std::string name() const override { return "oracle serve"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string listen_ = "0.0.0.0:7500";
  unsigned maxAge_ = 10;
};

class OracleQueryCommand : public OracleCommand {
public:
  [[nodiscard]] std::string name() const override { return "oracle query"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string src_;
  std::string dst_;
  unsigned k_ = 1;
  std::string objective_ = "delay";
};

class OracleMapCommand : public OracleCommand {
public:
  [[nodiscard]] std::string name() const override { return "oracle map"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
};

} // namespace nvbox::cli

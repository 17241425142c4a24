// The nvbox CLI as a user meets it: help at every level, version, exit codes
// and one-line errors. Runs the real binary; expected help texts are golden
// files in tests/golden/cli/.
#include "golden.hpp"
#include "process.hpp"

#include <gtest/gtest.h>

namespace nvbox::test {
namespace {

TEST(Cli, TopLevelHelpIsGoldenAndExitsZero) {
  const auto r = nvbox({"--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "cli/help.txt");
}

TEST(Cli, HelpCommandEqualsHelpFlag) {
  EXPECT_EQ(nvbox({"help"}).out, nvbox({"--help"}).out);
  EXPECT_EQ(nvbox({"help", "doctor"}).out, nvbox({"doctor", "--help"}).out);
}

TEST(Cli, DoctorHelpIsGolden) {
  const auto r = nvbox({"doctor", "--help"});
  EXPECT_EQ(r.exitCode, 0);
  expectGolden(r.out, "cli/doctor-help.txt");
  // --help before the command means the same.
  EXPECT_EQ(nvbox({"--help", "doctor"}).out, r.out);
}

// Every subcommand answers --help with its golden usage text.
class CliCommandHelp : public ::testing::TestWithParam<std::string> {};

TEST_P(CliCommandHelp, IsGolden) {
  const auto r = nvbox({"image", GetParam(), "--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "cli/image-" + GetParam() + "-help.txt");
}

INSTANTIATE_TEST_SUITE_P(Image, CliCommandHelp,
                         ::testing::Values("build", "list", "inspect", "verify", "rm", "export",
                                           "import", "push"));

TEST(Cli, NounWithoutVerbListsItsVerbs) {
  const auto help = nvbox({"image", "--help"});
  EXPECT_EQ(help.exitCode, 0);
  expectGolden(help.out, "cli/image-help.txt");
  EXPECT_EQ(nvbox({"--help", "image"}).out, help.out);
  const auto missing = nvbox({"image"});
  EXPECT_EQ(missing.exitCode, 2);
  EXPECT_EQ(lineCount(missing.err), 1U);
  EXPECT_NE(missing.err.find("nvbox: error: nvbox image: missing verb"), std::string::npos);
  const auto unknown = nvbox({"image", "frob"});
  EXPECT_EQ(unknown.exitCode, 2);
  EXPECT_NE(unknown.err.find("nvbox: error: nvbox image: unknown verb 'frob'"), std::string::npos);
}

TEST(Cli, VersionPrintsProjectVersion) {
  const auto r = nvbox({"--version"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.out, "nvbox " NVBOX_TEST_VERSION "\n");
}

TEST(Cli, NoArgumentsIsAUsageError) {
  const auto r = nvbox({});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("Usage: nvbox"), std::string::npos);
}

struct UsageCase {
  std::vector<std::string> args;
  std::string error;
};

class CliUsageError : public ::testing::TestWithParam<UsageCase> {};

TEST_P(CliUsageError, OneLineAndExitTwo) {
  const auto r = nvbox(GetParam().args);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.substr(0, GetParam().error.size()), GetParam().error) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliUsageError,
    ::testing::Values(
        UsageCase{{"frobnicate"}, "nvbox: error: unknown command 'frobnicate'; see 'nvbox --help'"},
        UsageCase{{"--bogus", "doctor"}, "nvbox: error: unknown option '--bogus'"},
        UsageCase{{"--host"}, "nvbox: error: option '--host' needs a value"},
        UsageCase{{"doctor", "--bogus"},
                  "nvbox: error: nvbox doctor: unrecognised option '--bogus'"},
        UsageCase{{"doctor", "--only", "nope"},
                  "nvbox: error: unknown check 'nope'; choose from libvirt, qemu"},
        UsageCase{{"doctor", "--kvm-timeout", "0"}, "nvbox: error: nvbox doctor: --kvm-timeout"},
        UsageCase{{"doctor", "--kvm-timeout", "soon"}, "nvbox: error: nvbox doctor: "},
        UsageCase{{"--host", "nowhere", "doctor"}, "nvbox: error: unknown host 'nowhere'"},
        UsageCase{{"doctor", "extra"}, "nvbox: error: nvbox doctor: too many positional"},
        UsageCase{{"image", "list", "--host", "local"},
                  "nvbox: error: nvbox image list: --host does not apply"},
        UsageCase{{"image", "push"}, "nvbox: error: nvbox image push: missing image name"},
        UsageCase{{"image", "push", "osr", "--pool", ""},
                  "nvbox: error: nvbox image push: --pool needs a name"},
        UsageCase{{"image", "push", "osr", "--pool-path", "images"},
                  "nvbox: error: nvbox image push: --pool-path must be an absolute directory on "
                  "the host, not 'images'"},
        UsageCase{{"image", "push", "osr", "--host", "nowhere"},
                  "nvbox: error: unknown host 'nowhere'"}));

TEST(Cli, UnreachableHostIsOneLineAndExitOne) {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  const auto r = nvbox({"doctor", "--host", "qemu+tcp://127.0.0.1:1/system"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(
      r.err.rfind("nvbox: error: cannot connect to host 'qemu+tcp://127.0.0.1:1/system': ", 0), 0U)
      << r.err;
}

TEST(Cli, UnreachableHostWithJsonIsStillOneErrorLine) {
  const auto r = nvbox({"--json", "doctor", "--host", "qemu+tcp://127.0.0.1:1/system"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U);
}

} // namespace
} // namespace nvbox::test

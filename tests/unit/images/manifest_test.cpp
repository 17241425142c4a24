// Manifest: round trip through JSON, the input digest, the name/date/file
// rules, and one case per kind of malformed manifest, each refused with one
// line that names the field.
#include "image_test_util.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/manifest.hpp"

#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nvbox::images {
namespace {

using nlohmann::json;

Manifest sample() {
  Manifest m;
  m.name = "osr";
  m.kernelVersion = "6.1.0-26-amd64";
  m.osrdVersion = "0.1.0";
  m.buildDate = "2024-11-25T17:59:00Z";
  m.buildInputs = {{"busybox", sha256Hex("busybox")}, {"osrd", sha256Hex("osrd")}};
  m.inputDigest = computeInputDigest(m.buildInputs);
  m.parts = {{PartRole::Kernel, "vmlinuz", sha256Hex("k"), 100, 100},
             {PartRole::Initrd, "initrd", sha256Hex("i"), 300, 200},
             {PartRole::Disk, "root.qcow2", sha256Hex("d"), std::uint64_t{2} << 30U, 5000000}};
  return m;
}

TEST(Manifest, RoundTripsThroughJson) {
  const Manifest m = sample();
  const std::string text = m.dump();
  const Manifest back = Manifest::parse(text, "test");
  EXPECT_EQ(back, m);
  EXPECT_EQ(back.dump(), text);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(back.storedSize(), 100U + 200U + 5000000U);
  EXPECT_EQ(back.rawSize(), 100U + 300U + (std::uint64_t{2} << 30U));
  ASSERT_NE(back.part(PartRole::Disk), nullptr);
  EXPECT_EQ(back.part(PartRole::Disk)->file, "root.qcow2");
  EXPECT_EQ(back.partByFile("initrd")->role, PartRole::Initrd);
  EXPECT_EQ(back.partByFile("nope"), nullptr);
}

TEST(Manifest, JsonUsesTheDocumentedFieldNames) {
  const json j = json::parse(sample().dump());
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["name"], "osr");
  EXPECT_EQ(j["kernel_version"], "6.1.0-26-amd64");
  EXPECT_EQ(j["osrd_version"], "0.1.0");
  EXPECT_EQ(j["build_date"], "2024-11-25T17:59:00Z");
  EXPECT_EQ(j["build_inputs"]["busybox"], sha256Hex("busybox"));
  EXPECT_EQ(j["input_digest"], sample().inputDigest);
  EXPECT_EQ(j["parts"][2]["role"], "disk");
  EXPECT_EQ(j["parts"][2]["file"], "root.qcow2");
  EXPECT_EQ(j["parts"][2]["sha256"], sha256Hex("d"));
  EXPECT_EQ(j["parts"][2]["raw_size"], std::uint64_t{2} << 30U);
  EXPECT_EQ(j["parts"][2]["stored_size"], 5000000);
  EXPECT_EQ(j.size(), 8U);
  EXPECT_EQ(j["parts"][0].size(), 5U);
}

TEST(Manifest, InputDigestIsSha256sumStyleListingSortedByName) {
  const std::string a = sha256Hex("a");
  const std::string b = sha256Hex("b");
  EXPECT_EQ(computeInputDigest({}), sha256Hex(""));
  EXPECT_EQ(computeInputDigest({{"zeta", b}, {"alpha", a}}),
            sha256Hex(a + "  alpha\n" + b + "  zeta\n"));
  // Different inputs, different digest.
  EXPECT_NE(computeInputDigest({{"alpha", a}}), computeInputDigest({{"alpha", b}}));
  EXPECT_NE(computeInputDigest({{"alpha", a}}), computeInputDigest({{"alphb", a}}));
}

TEST(Manifest, ImageNames) {
  for (const std::string &ok :
       std::vector<std::string>{"osr", "a", "osr-1.2_x", "0abc", std::string(64, 'a')}) {
    EXPECT_TRUE(isValidImageName(ok)) << ok;
  }
  for (const std::string &bad : std::vector<std::string>{
           "", "Osr", "-osr", ".osr", "_osr", "os r", "os/r", "..", "osr!", std::string(65, 'a')}) {
    EXPECT_FALSE(isValidImageName(bad)) << bad;
  }
  EXPECT_THROW(checkImageName("Bad"), UsageError);
  EXPECT_NO_THROW(checkImageName("good"));
}

TEST(Manifest, PartFileNames) {
  for (const char *ok : {"vmlinuz", "root.qcow2", "initrd.img-6.1+x", "A_b-c"}) {
    EXPECT_TRUE(isValidPartFileName(ok)) << ok;
  }
  for (const std::string &bad :
       std::vector<std::string>{"", ".", "..", "../x", "a/b", "/abs", ".hidden", "manifest.json",
                                "sp ace", "tab\t", std::string(129, 'a')}) {
    EXPECT_FALSE(isValidPartFileName(bad)) << bad;
  }
}

TEST(Manifest, Rfc3339Dates) {
  for (const char *ok :
       {"2024-11-25T17:59:00Z", "2024-02-29T00:00:00Z", "2024-11-25t17:59:00z",
        "2024-11-25T17:59:00.123Z", "2024-11-25T17:59:00+01:00", "2016-12-31T23:59:60Z"}) {
    EXPECT_TRUE(isRfc3339(ok)) << ok;
  }
  for (const char *bad :
       {"", "2024-11-25", "2024-11-25 17:59:00Z", "2024-11-25T17:59:00", "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-11-31T00:00:00Z",
        "2024-11-25T24:00:00Z", "2024-11-25T17:60:00Z", "2024-11-25T17:59:00.Z",
        "2024-11-25T17:59:00+0100", "2024-11-25T17:59:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(isRfc3339(bad)) << bad;
  }
  EXPECT_EQ(formatRfc3339(std::chrono::system_clock::from_time_t(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339(std::chrono::system_clock::from_time_t(1732557540)),
            "2024-11-25T17:59:00Z");
  EXPECT_TRUE(isRfc3339(formatRfc3339(std::chrono::system_clock::now())));
}

TEST(Manifest, RolesHaveNamesAndDefaultFiles) {
  EXPECT_EQ(toString(PartRole::Kernel), "kernel");
  EXPECT_EQ(toString(PartRole::Initrd), "initrd");
  EXPECT_EQ(toString(PartRole::Disk), "disk");
  EXPECT_EQ(parsePartRole("disk"), PartRole::Disk);
  EXPECT_FALSE(parsePartRole("Disk").has_value());
  EXPECT_EQ(defaultFileName(PartRole::Kernel), "vmlinuz");
  EXPECT_EQ(defaultFileName(PartRole::Initrd), "initrd");
  EXPECT_EQ(defaultFileName(PartRole::Disk), "root.qcow2");
}

// --- malformed manifests --------------------------------------------------

struct BadCase {
  std::string label;
  std::function<std::string()> text; // the manifest text to parse
  std::string error;                 // expected part of the message
};

std::ostream &operator<<(std::ostream &out, const BadCase &c) {
  return out << c.label;
}

// The sample manifest as JSON, changed by `edit`.
std::function<std::string()> edited(std::function<void(json &)> edit) {
  return [edit] {
    json j = json::parse(sample().dump());
    edit(j);
    return j.dump();
  };
}

std::function<std::string()> raw(std::string text) {
  return [text] { return text; };
}

class MalformedManifest : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedManifest, IsRefusedWithOneLineNamingTheProblem) {
  const std::string text = GetParam().text();
  try {
    (void)Manifest::parse(text, "test");
    FAIL() << "accepted: " << text;
  } catch (const Error &e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(GetParam().error), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_TRUE(what.starts_with("invalid manifest 'test': ") ||
                what.starts_with("manifest 'test' has format version"))
        << what;
    EXPECT_FALSE(e.hint().empty());
    EXPECT_EQ(e.kind(), Error::Kind::Failure);
  }
}

const std::string kDigest = sha256Hex("x");

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedManifest,
    ::testing::Values(
        BadCase{"NotJson", raw("{\"name\": "), "not valid JSON"},
        BadCase{"Empty", raw(""), "not valid JSON"},
        BadCase{"TopLevelArray", raw("[1, 2]"), "the manifest must be an object, not an array"},
        BadCase{"DuplicateKey", raw("{\"format_version\": 1, \"format_version\": 1}"),
                "duplicate field 'format_version'"},
        BadCase{"DuplicateNestedKey",
                [] {
                  std::string text = sample().dump();
                  const std::string role = "\"role\": \"kernel\"";
                  text.replace(text.find(role), role.size(), role + ", " + role);
                  return text;
                },
                "duplicate field 'role'"},
        BadCase{"InputsEmptiedDigestStale",
                edited([](json &j) { j["build_inputs"] = json::object(); }),
                "is not the digest of 'build_inputs'"},
        BadCase{"FutureFormatVersion", edited([](json &j) { j["format_version"] = 2; }),
                "has format version 2, this nvbox reads version 1"},
        BadCase{"FormatVersionString", edited([](json &j) { j["format_version"] = "1"; }),
                "field 'format_version' must be a non-negative integer, not a string"},
        BadCase{"MissingFormatVersion", edited([](json &j) { j.erase("format_version"); }),
                "missing field 'format_version'"},
        BadCase{"MissingName", edited([](json &j) { j.erase("name"); }), "missing field 'name'"},
        BadCase{"MissingParts", edited([](json &j) { j.erase("parts"); }), "missing field 'parts'"},
        BadCase{"MissingBuildDate", edited([](json &j) { j.erase("build_date"); }),
                "missing field 'build_date'"},
        BadCase{"MissingInputs", edited([](json &j) { j.erase("build_inputs"); }),
                "missing field 'build_inputs'"},
        BadCase{"BadName", edited([](json &j) { j["name"] = "Bad Name"; }), "field 'name'"},
        BadCase{"NameNotString", edited([](json &j) { j["name"] = 7; }),
                "field 'name' must be a string, not a non-negative integer"},
        BadCase{"KernelVersionWrongType", edited([](json &j) { j["kernel_version"] = 6.1; }),
                "field 'kernel_version' must be a string, not a fractional number"},
        BadCase{"KernelVersionEmpty", edited([](json &j) { j["kernel_version"] = ""; }),
                "field 'kernel_version' must be 1-256 characters"},
        BadCase{"OsrdVersionNull", edited([](json &j) { j["osrd_version"] = nullptr; }),
                "field 'osrd_version' must be a string, not null"},
        BadCase{"BuildDateNotRfc3339", edited([](json &j) { j["build_date"] = "yesterday"; }),
                "field 'build_date' must be an RFC 3339 date-time"},
        BadCase{"BuildDateImpossible",
                edited([](json &j) { j["build_date"] = "2023-02-29T00:00:00Z"; }),
                "field 'build_date'"},
        BadCase{"InputDigestNotHex", edited([](json &j) { j["input_digest"] = "xyz"; }),
                "field 'input_digest' must be 64 lowercase hex digits, not 'xyz'"},
        BadCase{"InputDigestUppercase", edited([](json &j) {
                  std::string d = j["input_digest"];
                  for (char &c : d) {
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                  }
                  j["input_digest"] = d;
                }),
                "field 'input_digest' must be 64 lowercase hex digits"},
        BadCase{"InputDigestMismatch", edited([](json &j) { j["input_digest"] = kDigest; }),
                "field 'input_digest' '" + kDigest + "' is not the digest of 'build_inputs'"},
        BadCase{"InputsNotObject", edited([](json &j) { j["build_inputs"] = json::array(); }),
                "field 'build_inputs' must be an object, not an array"},
        BadCase{"InputDigestBad", edited([](json &j) { j["build_inputs"]["busybox"] = "abc"; }),
                "field 'build_inputs.busybox' must be 64 lowercase hex digits"},
        BadCase{"InputDigestNumber", edited([](json &j) { j["build_inputs"]["busybox"] = 1; }),
                "field 'build_inputs.busybox' must be a string"},
        BadCase{"PartsNotArray", edited([](json &j) { j["parts"] = json::object(); }),
                "field 'parts' must be an array, not an object"},
        BadCase{"PartNotObject", edited([](json &j) { j["parts"][0] = "vmlinuz"; }),
                "field 'parts[0]' must be an object, not a string"},
        BadCase{"UnknownRole", edited([](json &j) { j["parts"][1]["role"] = "bootloader"; }),
                "field 'parts[1].role' must be kernel, initrd or disk, not 'bootloader'"},
        BadCase{"DuplicateRole", edited([](json &j) { j["parts"][1]["role"] = "kernel"; }),
                "field 'parts[1].role': a second 'kernel' part"},
        BadCase{"MissingRole", edited([](json &j) { j["parts"].erase(2); }),
                "field 'parts' has no 'disk' part"},
        BadCase{"NoParts", edited([](json &j) { j["parts"] = json::array(); }),
                "field 'parts' has no 'kernel' part"},
        BadCase{"MissingPartField", edited([](json &j) { j["parts"][0].erase("sha256"); }),
                "missing field 'parts[0].sha256'"},
        BadCase{"FileTraversal", edited([](json &j) { j["parts"][0]["file"] = "../x"; }),
                "field 'parts[0].file' must be a plain file name"},
        BadCase{"FileWithSlash", edited([](json &j) { j["parts"][0]["file"] = "boot/vmlinuz"; }),
                "field 'parts[0].file'"},
        BadCase{"FileAbsolute", edited([](json &j) { j["parts"][0]["file"] = "/etc/passwd"; }),
                "field 'parts[0].file'"},
        BadCase{"FileDotDot", edited([](json &j) { j["parts"][1]["file"] = ".."; }),
                "field 'parts[1].file'"},
        BadCase{"FileEmpty", edited([](json &j) { j["parts"][2]["file"] = ""; }),
                "field 'parts[2].file'"},
        BadCase{"FileIsManifest", edited([](json &j) { j["parts"][2]["file"] = "manifest.json"; }),
                "field 'parts[2].file'"},
        BadCase{"FileUsedTwice", edited([](json &j) { j["parts"][1]["file"] = "vmlinuz"; }),
                "field 'parts[1].file': 'vmlinuz' is used by two parts"},
        BadCase{"PartDigestShort", edited([](json &j) { j["parts"][2]["sha256"] = "abcd"; }),
                "field 'parts[2].sha256' must be 64 lowercase hex digits"},
        BadCase{"NegativeSize", edited([](json &j) { j["parts"][0]["raw_size"] = -1; }),
                "field 'parts[0].raw_size' must be a non-negative integer, not a negative integer"},
        BadCase{"FractionalSize", edited([](json &j) { j["parts"][0]["stored_size"] = 1.5; }),
                "field 'parts[0].stored_size' must be a non-negative integer, not a fractional"},
        BadCase{"SizeAsString", edited([](json &j) { j["parts"][0]["stored_size"] = "100"; }),
                "field 'parts[0].stored_size' must be a non-negative integer, not a string"},
        BadCase{"UnknownField", edited([](json &j) { j["compression"] = "zstd"; }),
                "unknown field 'compression'"},
        BadCase{"UnknownPartField", edited([](json &j) { j["parts"][0]["mode"] = 420; }),
                "unknown field 'parts[0].mode'"}),
    [](const ::testing::TestParamInfo<BadCase> &param) { return param.param.label; });

TEST(Manifest, ValidateChecksInMemoryManifests) {
  Manifest m = sample();
  EXPECT_NO_THROW(m.validate("mem"));
  m.parts[0].file = "../../etc/passwd";
  EXPECT_THROW(m.validate("mem"), Error);
  m = sample();
  m.buildInputs["extra"] = sha256Hex("e"); // input_digest now stale
  EXPECT_THROW(m.validate("mem"), Error);
}

TEST(Manifest, ErrorQuotesAreOneLineEvenForControlCharacters) {
  json j = json::parse(sample().dump());
  j["parts"][0]["file"] = "evil\nname";
  try {
    (void)Manifest::parse(j.dump(), "test");
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace nvbox::images

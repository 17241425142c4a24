// Manifest — what an OSR router image is made of: its parts (kernel, initrd,
// root disk) with their sha256 and sizes, the versions inside, and the build
// inputs that produced it. Stored as manifest.json beside the parts and as
// the first entry of a bundle.
//
// parse() is strict because manifests arrive from disk and from bundles: an
// unknown format version, a missing, unknown or duplicate field, a wrong type,
// a malformed digest or date, an unsafe file name, a missing or repeated part
// role, or an input_digest that does not match build_inputs all give one
// nvbox::Error that names the field. dump() writes the canonical text
// (sorted keys, two-space indent, final newline); parse(dump(m)) == m.
//
// Threading: plain values; the functions are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox::images {

enum class PartRole { Kernel, Initrd, Disk };

// "kernel", "initrd", "disk".
[[nodiscard]] std::string_view toString(PartRole role) noexcept;
[[nodiscard]] std::optional<PartRole> parsePartRole(std::string_view text) noexcept;
// The file names the build uses: "vmlinuz", "initrd", "root.qcow2".
[[nodiscard]] std::string_view defaultFileName(PartRole role) noexcept;
// Every role, in manifest order.
inline constexpr PartRole kAllRoles[] = {PartRole::Kernel, PartRole::Initrd, PartRole::Disk};

struct Part {
  PartRole role = PartRole::Kernel;
  std::string file;             // plain file name inside the image directory
  std::string sha256;           // of the file as stored, 64 lowercase hex digits
  std::uint64_t rawSize = 0;    // bytes once decompressed (disk: the qcow2's virtual size)
  std::uint64_t storedSize = 0; // bytes of the file as stored and shipped
  bool operator==(const Part &) const = default;
};

struct Manifest {
  static constexpr int kFormatVersion = 1;
  static constexpr std::string_view kFileName = "manifest.json";

  std::string name;                               // image name (see isValidImageName)
  int formatVersion = kFormatVersion;             // always kFormatVersion once parsed
  std::vector<Part> parts;                        // one per role
  std::string kernelVersion;                      // e.g. "6.1.0-26-amd64"
  std::string osrdVersion;                        // e.g. "0.1.0"
  std::map<std::string, std::string> buildInputs; // input name -> sha256
  std::string buildDate;                          // RFC 3339, e.g. "2024-11-25T17:59:00Z"
  std::string inputDigest;                        // computeInputDigest(buildInputs)

  // Parses and validates manifest text; `source` (a path, "bundle 'x'") names
  // it in errors.
  [[nodiscard]] static Manifest parse(std::string_view text, const std::string &source);
  // The same checks on an in-memory manifest, e.g. before the store writes one.
  void validate(const std::string &source) const;

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] std::string dump() const;

  [[nodiscard]] const Part *part(PartRole role) const noexcept;
  [[nodiscard]] const Part *partByFile(std::string_view file) const noexcept;
  [[nodiscard]] std::uint64_t storedSize() const noexcept; // sum over parts
  [[nodiscard]] std::uint64_t rawSize() const noexcept;    // sum over parts

  bool operator==(const Manifest &) const = default;
};

// SHA-256 of the build inputs listed in sha256sum style, sorted by name:
// for each input "SHA256  NAME\n". Two builds with the same digest had the
// same inputs, so the second one can be skipped.
[[nodiscard]] std::string computeInputDigest(const std::map<std::string, std::string> &inputs);

// [a-z0-9][a-z0-9._-]{0,63}
[[nodiscard]] bool isValidImageName(std::string_view name) noexcept;
// Throws nvbox::UsageError quoting the name and the rule.
void checkImageName(std::string_view name);
// A part file name: 1-128 of [A-Za-z0-9._+-], not starting with '.', and not
// "manifest.json" (so never '/', ".." or empty).
[[nodiscard]] bool isValidPartFileName(std::string_view file) noexcept;

// RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)", with
// real calendar ranges.
[[nodiscard]] bool isRfc3339(std::string_view text) noexcept;
// "2024-11-25T17:59:00Z" (UTC, whole seconds).
[[nodiscard]] std::string formatRfc3339(std::chrono::system_clock::time_point when);

} // namespace nvbox::images

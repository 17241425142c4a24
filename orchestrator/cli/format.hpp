// How the CLI formats what it prints: aligned tables, quoted values, sizes
// and durations. Shared by every command so that they all look alike.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace nvbox::cli {

// Columns separated by two spaces, each as wide as its widest cell. The last
// cell of a row is not padded and does not widen its column, so a short row
// can end in a long remark.
void printTable(std::ostream &out, const std::vector<std::vector<std::string>> &rows,
                const std::string &indent = "");
// "'text'"
[[nodiscard]] std::string quote(const std::string &text);
// "12.3 s" (or with more decimals)
[[nodiscard]] std::string formatDuration(double seconds, int decimals = 1);
// "[########            ]": `done` of `total` in 20 cells.
[[nodiscard]] std::string progressBar(std::uint64_t done, std::uint64_t total);
// Bytes as "7.9 MiB" (one decimal).
[[nodiscard]] std::string formatMiB(std::uint64_t bytes);
// MiB as "512 MiB" or "7.8 GiB".
[[nodiscard]] std::string formatSizeMiB(std::uint64_t mib);
// "3.14" with `decimals` decimals.
[[nodiscard]] std::string formatFixed(double value, int decimals);
// Goodput as "5.31 Mbit/s" (two decimals below 10, else one).
[[nodiscard]] std::string formatMbps(double mbps);

// osrd's status figures as table cells, without their units. "-" when the
// figure is absent (an older osrd) or not a number, and for osrd's
// "unknown": a negative figure, or a rate of 0 (not measured yet).
// Microseconds as milliseconds: "10.25".
[[nodiscard]] std::string microsAsMillis(const nlohmann::json &us);
// A fraction as a percentage: "41.0%".
[[nodiscard]] std::string fractionAsPercent(const nlohmann::json &fraction);
// Bytes/s as Mbit/s: "3.52".
[[nodiscard]] std::string bytesPerSecondAsMbit(const nlohmann::json &rate);

} // namespace nvbox::cli

#include "format.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace nvbox::cli {

void printTable(std::ostream &out, const std::vector<std::vector<std::string>> &rows,
                const std::string &indent) {
  std::vector<std::size_t> widths;
  for (const auto &row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i + 1 < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto &row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out << line << "\n";
  }
}

std::string quote(const std::string &text) {
  return "'" + text + "'";
}

std::string formatDuration(double seconds, int decimals) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(decimals) << seconds << " s";
  return s.str();
}

std::string progressBar(std::uint64_t done, std::uint64_t total) {
  constexpr std::uint64_t kCells = 20;
  const std::uint64_t full = total == 0 ? kCells : std::min(kCells, done * kCells / total);
  return "[" + std::string(full, '#') + std::string(kCells - full, ' ') + "]";
}

std::string formatMiB(std::uint64_t bytes) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1024.0 * 1024.0)
    << " MiB";
  return s.str();
}

std::string formatSizeMiB(std::uint64_t mib) {
  if (mib < 1024) {
    return std::to_string(mib) + " MiB";
  }
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << static_cast<double>(mib) / 1024.0 << " GiB";
  return s.str();
}

std::string formatFixed(double value, int decimals) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(decimals) << value;
  return s.str();
}

std::string formatMbps(double mbps) {
  return formatFixed(mbps, mbps < 10 ? 2 : 1) + " Mbit/s";
}

namespace {

// The figure, when it is one osrd knows.
bool known(const nlohmann::json &v) {
  return v.is_number() && v.get<double>() >= 0;
}

} // namespace

std::string microsAsMillis(const nlohmann::json &us) {
  return known(us) ? formatFixed(us.get<double>() / 1000.0, 2) : "-";
}

std::string fractionAsPercent(const nlohmann::json &fraction) {
  return known(fraction) ? formatFixed(fraction.get<double>() * 100.0, 1) + "%" : "-";
}

std::string bytesPerSecondAsMbit(const nlohmann::json &rate) {
  return known(rate) && rate.get<double>() > 0 ? formatFixed(rate.get<double>() * 8 / 1e6, 2) : "-";
}

} // namespace nvbox::cli

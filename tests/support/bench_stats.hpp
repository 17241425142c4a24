// Small statistics for benchmarks: these machines are shared and noisy, so
// benchmarks report medians of several runs next to a same-run baseline.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <vector>

namespace nvbox::test {

// The median (upper middle for an even count); throws on an empty sample.
inline double median(std::vector<double> v) {
  if (v.empty()) {
    throw std::invalid_argument("median of no samples");
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Calls `once` n times and collects what it returns.
inline std::vector<double> repeat(int n, const std::function<double()> &once) {
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    samples.push_back(once());
  }
  return samples;
}

// NVBOX_BENCH_QUICK=1: CI sizes (scripts/test.sh), so that the whole suite
// stays under an hour; each benchmark says what it leaves out. Unset: the
// full sizes.
inline bool quickBench() {
  const char *env = std::getenv("NVBOX_BENCH_QUICK");
  return env != nullptr && env[0] == '1';
}

} // namespace nvbox::test

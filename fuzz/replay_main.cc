// SPDX-License-Identifier: MIT
// A plain driver for the fuzz targets, for builds without a fuzzing engine (the sanitizer
// gate): runs LLVMFuzzerTestOneInput once per file named on the command line (a directory
// means every regular file in it, sorted). Exit status 0 when every input ran; a crash
// ends the process as it would under the fuzzer.
//
// `--repeat N` (first argument) runs the whole list N times and prints the harness's own
// throughput (inputs per second, without any engine's mutation and feature bookkeeping):
// the figure to compare side by side when making a target faster. Not a test.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> files;
  long repeat = 0;
  int first = 1;
  if (argc > 2 && std::string(argv[1]) == "--repeat") {
    repeat = std::strtol(argv[2], nullptr, 10);
    if (repeat <= 0) {
      std::fprintf(stderr, "--repeat: expected a positive count, got %s\n", argv[2]);
      return 2;
    }
    first = 3;
  }
  for (int i = first; i < argc; ++i) {
    std::error_code ec;
    if (std::filesystem::is_directory(argv[i], ec)) {
      std::vector<std::string> in;
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) in.push_back(e.path().string());
      std::sort(in.begin(), in.end());
      files.insert(files.end(), in.begin(), in.end());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  std::vector<std::vector<char>> inputs;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read\n", f.c_str());
      return 2;
    }
    inputs.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  if (repeat > 0) {
    const auto start = std::chrono::steady_clock::now();
    for (long r = 0; r < repeat; ++r)
      for (const std::vector<char>& b : inputs)
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double n = static_cast<double>(repeat) * static_cast<double>(inputs.size());
    std::printf("%zu input(s) x %ld: %.0f exec/s, %.1f us per input\n", inputs.size(), repeat,
                n / s, 1e6 * s / n);
    return 0;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    std::fprintf(stderr, "running %s (%zu bytes)\n", files[i].c_str(), inputs[i].size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(inputs[i].data()), inputs[i].size());
  }
  std::fprintf(stderr, "ran %zu input(s)\n", files.size());
  return 0;
}

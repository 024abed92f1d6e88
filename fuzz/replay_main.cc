// SPDX-License-Identifier: MIT
// A plain driver for the fuzz targets, for builds without a fuzzing engine (the sanitizer
// gate): runs LLVMFuzzerTestOneInput once per file named on the command line (a directory
// means every regular file in it, sorted). Exit status 0 when every input ran; a crash
// ends the process as it would under the fuzzer.
//
// `--repeat N` (first argument) runs the whole list N times and prints the harness's own
// throughput (inputs per second, without any engine's mutation and feature bookkeeping):
// the figure to compare side by side when making a target faster. Not a test.
//
// `--malloc-balance` (first argument) runs the list twice and fails (exit 1) naming every
// input whose second run allocates more heap blocks than it frees. The first pass warms
// what a process creates once (lock classes, allocation-site statistics, pools at their
// high-water mark). An input that keeps memory past its run costs a campaign: libFuzzer
// runs it a second time to look for a leak (and stops looking after 1,000 of them), so
// state carried from one input into the next (a reused container that grows for one
// input and shrinks for another) doubles the cost of the inputs it touches. Needs a
// sanitizer runtime's allocator hooks (exit 2 without them).
#include <algorithm>
#include <atomic>
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

// From the sanitizer runtimes (ASan, TSan, ...); weak, so that a build without one links.
extern "C" __attribute__((weak)) int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void*, size_t), void (*free_hook)(const volatile void*));

namespace {

// Heap blocks allocated and freed since the hooks went in. Relaxed: only the totals are
// read, after the input's run has returned (and its threads, if any, have been joined).
std::atomic<long> g_mallocs{0};
std::atomic<long> g_frees{0};
void on_malloc(const volatile void*, size_t) { g_mallocs.fetch_add(1, std::memory_order_relaxed); }
void on_free(const volatile void*) { g_frees.fetch_add(1, std::memory_order_relaxed); }

void run_input(const std::vector<char>& b) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

int malloc_balance(const std::vector<std::string>& files, const std::vector<std::vector<char>>& inputs) {
  if (!__sanitizer_install_malloc_and_free_hooks ||
      !__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free)) {
    std::fprintf(stderr, "--malloc-balance: this build has no sanitizer allocator hooks\n");
    return 2;
  }
  for (const std::vector<char>& b : inputs) run_input(b);
  size_t bad = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const long m0 = g_mallocs.load(std::memory_order_relaxed);
    const long f0 = g_frees.load(std::memory_order_relaxed);
    run_input(inputs[i]);
    const long kept = (g_mallocs.load(std::memory_order_relaxed) - m0) -
                      (g_frees.load(std::memory_order_relaxed) - f0);
    if (kept > 0) {
      ++bad;
      std::fprintf(stderr, "%s: its second run kept %ld heap block(s) past its end\n",
                   files[i].c_str(), kept);
    }
  }
  std::fprintf(stderr, "malloc balance: %zu of %zu input(s) kept memory past their run\n", bad,
               inputs.size());
  return bad != 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  long repeat = 0;
  bool balance = false;
  int first = 1;
  if (argc > 1 && std::string(argv[1]) == "--malloc-balance") {
    balance = true;
    first = 2;
  } else if (argc > 2 && std::string(argv[1]) == "--repeat") {
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
  if (balance) return malloc_balance(files, inputs);
  if (repeat > 0) {
    const auto start = std::chrono::steady_clock::now();
    for (long r = 0; r < repeat; ++r)
      for (const std::vector<char>& b : inputs) run_input(b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double n = static_cast<double>(repeat) * static_cast<double>(inputs.size());
    std::printf("%zu input(s) x %ld: %.0f exec/s, %.1f us per input\n", inputs.size(), repeat,
                n / s, 1e6 * s / n);
    return 0;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    std::fprintf(stderr, "running %s (%zu bytes)\n", files[i].c_str(), inputs[i].size());
    run_input(inputs[i]);
  }
  std::fprintf(stderr, "ran %zu input(s)\n", files.size());
  return 0;
}

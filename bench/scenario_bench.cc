// SPDX-License-Identifier: MIT
// The fuzz_ops world: the cost of a fresh world per input (construct, quiesce, tear down
// with the leak check), empty and with one disk and one cgroup, and of running each seed
// of corpus/fuzz_ops (decoded once). Without sanitizers; the fuzzer's own exec/s under
// ASan+UBSan is the other figure (see fuzz/README.md). Not a test.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "impl/kern/report.h"
#include "impl/kern/task.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/text.h"

namespace {

void BM_WorldResetEmpty(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);
  for (auto _ : state) scenario::run_scenario({});
}
BENCHMARK(BM_WorldResetEmpty)->Unit(benchmark::kMicrosecond);

void BM_WorldResetDiskAndCgroup(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);
  scenario::Scenario s;
  scenario::ParseError err;
  scenario::parse_text("disk_alloc d0 8:16\ndisk_add d0\nmkdir /a\n", "bench", &s, &err);
  for (auto _ : state) scenario::run_scenario(s);
}
BENCHMARK(BM_WorldResetDiskAndCgroup)->Unit(benchmark::kMicrosecond);

void BM_SeedCorpus(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);
  std::vector<scenario::Scenario> seeds;
  size_t ops = 0;
  for (const auto& e : std::filesystem::directory_iterator(BLKCG_SOURCE_DIR "/corpus/fuzz_ops")) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    seeds.push_back(scenario::decode_binary(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
    scenario::strip_expectations(&seeds.back());
    ops += seeds.back().ops.size();
  }
  for (auto _ : state)
    for (const auto& s : seeds) scenario::run_scenario(s);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(seeds.size()));
  state.counters["ops_per_input"] = static_cast<double>(ops) / static_cast<double>(seeds.size());
}
BENCHMARK(BM_SeedCorpus)->Unit(benchmark::kMillisecond);

}  // namespace

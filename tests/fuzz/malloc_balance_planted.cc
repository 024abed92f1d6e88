// SPDX-License-Identifier: MIT
// A planted fault for the replay driver's --malloc-balance check: a target that keeps a
// container across inputs and resizes it per input, as the fuzz_ops harness once did
// with its reused Scenario. Every other run grows the container (allocations that
// outlive the run), the runs between shrink it. The gate runs it and requires the check
// to name the growing runs; a check that stopped counting would let this pass.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<std::string> kept;
  static unsigned runs = 0;
  kept.resize(++runs % 2 != 0 ? 1 : 4, std::string(48, static_cast<char>(size)));
  (void)data;
  return 0;
}

// SPDX-License-Identifier: MIT
// The binary form of a scenario, for fuzzers (FORMAT.md, "Binary form, version 1"): a
// version byte, then operations, each an opcode byte and typed arguments. References to
// earlier objects are indices into what the input bound so far (so a mutated byte still
// names a real cgroup, disk or bio), and io.max writes can be built from typed fields.
//
// decode_binary never fails and never crashes: bytes that do not form a valid operation
// are skipped (the rest still decodes), a truncated operation ends the scenario, and an
// unknown version byte gives the empty scenario. encode_binary writes any scenario so that
// decode_binary(encode_binary(s)) == s.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "impl/scenario/op.h"

namespace scenario {

inline constexpr uint8_t kBinaryVersion = 1;

Scenario decode_binary(const uint8_t* data, size_t size);
// The same into *out, reusing its storage (a fuzz target decodes every input into one).
void decode_binary(const uint8_t* data, size_t size, Scenario* out);
std::vector<uint8_t> encode_binary(const Scenario& s);

// The file names a binary write/read can pick by index (then "literal" for others).
const std::vector<const char*>& binary_file_table();

}  // namespace scenario

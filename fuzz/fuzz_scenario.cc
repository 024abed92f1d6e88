// SPDX-License-Identifier: MIT
// fuzz_scenario: the text parser of the operation language. Never a crash; a scenario
// that parses prints back to text that parses to the same scenario, and survives the
// binary form both ways; a rejection names a line inside the input.
//
// An input whose first byte is the binary form's version (never the start of a text
// scenario: it is a control character) is decoded as the binary form instead, and what it
// decodes to must print as text that parses back to it and encode to bytes that decode
// to it again: the promise that every fuzz_ops/fuzz_sched input decodes to a readable
// scenario that replays (AFL++ found a file path that broke it).
#include <cstddef>
#include <cstdint>
#include <string>

#include "impl/kern/report.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/text.h"

namespace {

void fail(const std::string& what, const std::string& input) {
  kern::kreport(kern::ReportKind::kOracle, "fuzz_scenario:" + what,
                "fuzz_scenario: " + what + "\ninput:\n" + input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    return true;
  }();
  (void)init;
  const std::string input(reinterpret_cast<const char*>(data), size);
  scenario::Scenario s;
  scenario::ParseError err;
  if (size > 0 && data[0] == scenario::kBinaryVersion) {
    s = scenario::decode_binary(data, size);
  } else if (!scenario::parse_text(input, "input", &s, &err)) {
    int lines = 1;
    for (char c : input) lines += c == '\n';
    if (err.line < 1 || err.line > lines || err.reason.empty()) fail("error-position", input);
    return 0;
  }
  const std::string text = scenario::to_text(s);
  scenario::Scenario again;
  if (!scenario::parse_text(text, "printed", &again, &err) || !(again == s))
    fail("print-parse-roundtrip", text + "\n(" + err.str() + ")");
  const std::vector<uint8_t> bin = scenario::encode_binary(s);
  if (!(scenario::decode_binary(bin.data(), bin.size()) == s)) fail("binary-roundtrip", input);
  return 0;
}

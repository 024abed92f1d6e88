// SPDX-License-Identifier: MIT
// The text form of a scenario (FORMAT.md): one operation per line, optional task tag
// "T2:", "#" comments, quoted strings with C escapes, "=> RESULT" expectations.
//
// parse_text never throws and never crashes on any input: it returns the scenario, or the
// first error with the file name, the 1-based line and the reason. to_text prints a
// scenario so that parse_text(to_text(s)) == s.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "impl/scenario/op.h"

namespace scenario {

struct ParseError {
  std::string file;
  int line = 0;
  std::string reason;
  std::string str() const { return file + ":" + std::to_string(line) + ": " + reason; }
};

// Returns true and fills *out, or false and fills *err.
bool parse_text(const std::string& text, const std::string& file, Scenario* out, ParseError* err);
std::string to_text(const Scenario& s);

// 64-bit FNV-1a of `s`: content names of inputs (`scenario_tool hash`) and the short form
// of a text result in an expectation failure's signature.
uint64_t fnv1a(std::string_view s);
std::string op_to_text(const Op& op);
// The schedule's "schedule ..." line ("" for none) and one preempt line (no newline).
std::string schedule_to_text(const Schedule& sc);
std::string preempt_to_text(const Preempt& p);
// A string as the text form quotes it.
std::string quote(const std::string& s);

}  // namespace scenario

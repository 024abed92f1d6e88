// SPDX-License-Identifier: MIT
// How the property tests run a rapidcheck property: with fixed parameters in the gate, or
// with the ones RC_PARAMS gives when it is set (exploration and replay).
//
// Gate runs must not be flaky, so every property here runs with a fixed seed and a fixed
// number of cases unless the environment asks otherwise:
//
//   RC_PARAMS="seed=42 max_success=2000" ./prop_tests --gtest_filter='PropStateful.*'
//       explores other inputs (rapidcheck's own defaults fill the keys not given: without
//       "seed" every run draws a fresh one);
//   RC_PARAMS="reproduce=..."
//       replays a failure exactly; the failure message prints the string to use.
//
// Properties that plant a bug (the "busted" tests, which must find a counterexample) always
// run with their fixed parameters: RC_PARAMS does not apply to them.
//
// max_size stays at most 100: the packaged rapidcheck snapshot trips UBSan above that.
#pragma once

#include <rapidcheck.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>

#include "rapidcheck/detail/TestListenerAdapter.h"

namespace prop {

struct Outcome {
  bool failed = false;         // a counterexample was found (or the run gave up / errored)
  bool gave_up = false;        // too many discarded cases, or a generation error
  int tests = 0;               // successful cases before the end
  int shrinks = 0;             // accepted shrink steps
  std::string message;         // rapidcheck's report, plus the RC_PARAMS line to replay it
  std::string counterexample;  // the shown values of the (shrunk) failing case
  std::string description;     // why the (shrunk) failing case failed
};

// Counts accepted shrink steps.
class ShrinkCounter final : public rc::detail::TestListenerAdapter {
 public:
  void onShrinkTried(const rc::detail::CaseDescription&, bool accepted) override {
    shrinks += accepted ? 1 : 0;
  }
  int shrinks = 0;
};

inline rc::detail::TestParams fixed_params(uint64_t seed, int max_success, int max_size) {
  rc::detail::TestParams p;
  p.seed = seed;
  p.maxSuccess = max_success;
  p.maxSize = max_size < 100 ? max_size : 100;
  p.maxDiscardRatio = 10;
  return p;
}

// Runs `property` (a callable using rapidcheck's assertion macros and `*gen`) under the
// id `id`. `env_may_override`: RC_PARAMS, when set, replaces `params` (and may ask to
// reproduce a recorded failure of this id).
template <typename Property>
Outcome check_property(const std::string& id, Property&& property, rc::detail::TestParams params,
                       bool env_may_override = true) {
  using namespace rc::detail;
  std::unordered_map<std::string, Reproduce> reproduce;
  const char* env = std::getenv("RC_PARAMS");
  if (env_may_override && env != nullptr && *env != '\0') {
    params = configuration().testParams;
    if (params.maxSize > 100) params.maxSize = 100;
    reproduce = configuration().reproduce;
  }
  TestMetadata md;
  md.id = id;
  md.description = id;
  ShrinkCounter listener;
  const TestResult result =
      checkProperty(toProperty(std::forward<Property>(property)), md, params, listener, reproduce);
  Outcome out;
  out.shrinks = listener.shrinks;
  std::ostringstream msg;
  printResultMessage(result, msg);
  if (result.template is<SuccessResult>()) {
    out.tests = result.template get<SuccessResult>().numSuccess;
  } else if (result.template is<FailureResult>()) {
    const FailureResult& f = result.template get<FailureResult>();
    out.failed = true;
    out.tests = f.numSuccess;
    out.description = f.description;
    for (const auto& [type, value] : f.counterExample) out.counterexample += value + "\n";
    Configuration c;
    c.reproduce[id] = f.reproduce;
    msg << "\nTo replay exactly: RC_PARAMS=\"" << configToMinimalString(c) << "\"\n";
  } else {
    out.failed = true;
    out.gave_up = true;
  }
  out.message = msg.str();
  return out;
}

}  // namespace prop

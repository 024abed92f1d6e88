// SPDX-License-Identifier: MIT
#include "impl/kern/refcount.h"

#include <string>

#include "impl/kern/report.h"

namespace kern {

void refcount_report(const refcount_t& r, const char* what) {
  kreport(ReportKind::kRefcount, std::string("refcount:") + r.name + ":" + what,
          std::string("refcount_t ") + r.name + ": " + what);
}

}  // namespace kern

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The minimizer on planted bugs (scenario_tool minimize, TOOL given as the argument):
- a scheduled crash padded with unrelated operations, some of them pairs far apart
  (mkdir /y ... rmdir /y), shrinks back to at most the regression's size, still failing
  with the bug and passing without it;
- a preemption routed through a task whose only operation can go is retargeted, and the
  task goes;
- a preemption to a task without operations goes even with no time for any pass;
- an operation that only has to come before the race moves into the prologue, and the
  preemptions that placed it there go with it;
- a failing expectation that describes a whole run (the v1 scenario with the v1-stats bug
  of #21 planted) shrinks differentially (--against, here the same tool without the bug)
  to a scenario that fails with the bug and passes without it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/asan-ubsan/tools/scenario_tool"
ENV = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1")


def ops_of(text: str) -> list:
    return [l for l in text.splitlines()
            if l.strip() and not l.startswith("#") and not l.startswith(("schedule", "preempt"))]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, env=ENV, timeout=600)


class Minimize(unittest.TestCase):
    def minimize_planted(self, text: str, flag: str) -> str:
        """Minimizes `text` (which must fail with busted `flag`) for 60 s; the result must
        still fail with the flag and pass without it. Returns the minimized text."""
        with tempfile.TemporaryDirectory() as d:
            src, out = Path(d) / "in.scn", Path(d) / "min.scn"
            src.write_text(text)
            self.assertNotEqual(run("run", f"--busted={flag}", str(src)).returncode, 0)
            r = run("minimize", f"--busted={flag}", "--time=60", str(src), str(out))
            self.assertEqual(r.returncode, 0, r.stderr)
            mini = out.read_text()
            self.assertNotEqual(run("run", f"--busted={flag}", str(out)).returncode, 0, mini)
            self.assertEqual(run("run", str(out)).returncode, 0, mini)
            return mini

    def test_padded_schedule_shrinks_back(self):
        reg = (ROOT / "corpus/regressions/assoc-racing-rmdir.scn").read_text()
        lines = [l for l in reg.splitlines() if l and not l.startswith("#")]
        want = len(ops_of(reg))
        # Padding in the prologue: a cgroup made early and removed late, with the
        # regression's own cgroups made in between, and some reads.
        i = lines.index("mkdir /a")
        padded = (lines[:i] + ["mkdir /y", "read /io.stat", "mkdir /y/z"] + lines[i:i + 2] +
                  ["read /y/io.max", "rmdir /y/z", "rmdir /y"] + lines[i + 2:])
        # preempt op=N counts operations: the padding moved them by 6.
        src = ("\n".join(padded) + "\n").replace("op=5 ", "op=11 ").replace("op=8 ", "op=14 ")
        text = self.minimize_planted(src, "blkg_create_after_offline")
        self.assertLessEqual(len(ops_of(text)), want, text)
        self.assertNotIn("/y", text)

    def test_preemption_through_a_removable_task_is_retargeted(self):
        # The regression's first preemption (T1 -> T2) goes through a third task whose
        # only operation is a read: T1 -> T3, and T3 at its first seam -> T2. Removing
        # T3's read leaves T1 -> T3 pointing nowhere; retargeted at T2 it opens the window
        # again, so T3 goes.
        reg = (ROOT / "corpus/regressions/assoc-racing-rmdir.scn").read_text()
        lines = [l for l in reg.splitlines() if l and not l.startswith(("#", "preempt"))]
        want = len(ops_of(reg))
        lines += ["T3: read /io.stat", "preempt T1 op=5 seam=1 T3",
                  f"preempt T3 op={want + 1} seam=1 T2", "preempt T2 op=8 seam=45 T1"]
        text = self.minimize_planted("\n".join(lines) + "\n", "blkg_create_after_offline")
        self.assertNotIn("T3", text)
        self.assertLessEqual(len(ops_of(text)), want, text)

    def test_preemption_to_a_task_without_operations_goes_without_time(self):
        # A preemption to a task that has no operation does nothing; it goes even when the
        # budget is spent before any pass (--time=0).
        reg = (ROOT / "corpus/regressions/assoc-racing-rmdir.scn").read_text()
        with tempfile.TemporaryDirectory() as d:
            src, out = Path(d) / "noop.scn", Path(d) / "min.scn"
            src.write_text(reg + "preempt T2 op=7 seam=1 T5\n")
            r = run("minimize", "--busted=blkg_create_after_offline", "--time=0", str(src), str(out))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("T5", out.read_text())

    def test_operation_needed_before_the_race_moves_into_the_prologue(self):
        # #17's regression with its activation done by T2, three preemptions placing it
        # before T1's reset_stats: only the last one opens the window.
        reg = (ROOT / "corpus/regressions/deactivate-racing-reset-stats.scn").read_text()
        lines = [l for l in reg.splitlines() if l and not l.startswith("#")]
        self.assertIn("pol_activate d0", lines)
        self.assertIn("preempt T1 op=9 seam=12 T2", lines)
        lines.remove("pol_activate d0")
        i = lines.index('T1: write /a/blkio.reset_stats "1"')
        lines.insert(i, "T2: pol_activate d0")
        lines.remove("preempt T1 op=9 seam=12 T2")
        lines += ["preempt T1 op=9 seam=1 T2", "preempt T2 op=10 seam=1 T1", "preempt T1 op=9 seam=12 T2"]
        text = self.minimize_planted("\n".join(lines) + "\n", "deactivate_without_blkcg_lock")
        self.assertNotIn("T2: pol_activate", text)
        self.assertEqual([l for l in text.splitlines() if l.startswith("preempt")],
                         ["preempt T1 op=9 seam=12 T2"], text)

    def test_differential_expectation(self):
        src = ROOT / "corpus/scenarios/legacy.scn"
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "min.scn"
            r = run("minimize", "--busted=throtl_v1_stats_only_with_rules", f"--against={TOOL}",
                    "--time=60", str(src), str(out))
            self.assertEqual(r.returncode, 0, r.stderr)
            text = out.read_text()
            self.assertLessEqual(len(ops_of(text)), 10, text)
            self.assertIn("=>", text)  # the reference tree's results, written back
            self.assertNotEqual(run("run", "--busted=throtl_v1_stats_only_with_rules", str(out)).returncode, 0)
            self.assertEqual(run("run", str(out)).returncode, 0, text)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Self-tests of the Python tools: malformed bugbench patch files are named with file, line
and reason; a patch that does not apply fails `check`; the streaming runner sees the first
report and stops; crash signatures are stable and name kind, frames and operation; the
JUnit writer's output parses."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import argparse  # noqa: E402
import bugbench  # noqa: E402
import btlib  # noqa: E402
import campaign  # noqa: E402
import triage  # noqa: E402

HEADER = """# bugbench: 99
# commit: 0123456789ab
# title: a planted bug
# class: test
# invariant: none
# expressible: yes
"""

# A diff against a file that exists on main (the README's first line stays put).
GOOD_DIFF = """diff --git a/impl/kern/bugbench.h b/impl/kern/bugbench.h
--- a/impl/kern/bugbench.h
+++ b/impl/kern/bugbench.h
@@ -1,2 +1,3 @@
 // SPDX-License-Identifier: MIT
+// BUGBENCH_REACHED();
 // The bug benchmark's canary (Magma's idea): a re-injected bug (bench/bugs/*.patch) calls
"""


class ParseTest(unittest.TestCase):
    def write(self, text: str) -> Path:
        d = Path(tempfile.mkdtemp())
        p = d / "99-test.patch"
        p.write_text(text)
        return p

    def assertParseError(self, text: str, where: str, reason: str):
        p = self.write(text)
        with self.assertRaises(bugbench.PatchError) as cm:
            bugbench.parse_patch(p)
        msg = str(cm.exception)
        self.assertIn(f"{p}:{where}:", msg)
        self.assertIn(reason, msg)

    def test_good_patch_parses(self):
        b = bugbench.parse_patch(self.write(HEADER + "# note: one\n# note: two\n" + GOOD_DIFF))
        self.assertEqual(b.id, "99")
        self.assertTrue(b.expressible)
        self.assertEqual(b.files, ["impl/kern/bugbench.h"])
        self.assertEqual(b.notes, ["one", "two"])

    def test_missing_key(self):
        self.assertParseError(HEADER.replace("# class: test\n", "") + GOOD_DIFF, "1", "'class'")

    def test_unknown_key_names_its_line(self):
        self.assertParseError(HEADER + "# colour: red\n" + GOOD_DIFF, "7", "unknown key 'colour'")

    def test_garbage_line_names_its_line(self):
        self.assertParseError(HEADER[:20] + "not a header\n" + HEADER[20:], "2", "expected '# key: value'")

    def test_expressible_yes_needs_a_diff(self):
        self.assertParseError(HEADER, "6", "has no diff")

    def test_expressible_no_needs_a_reason_and_no_diff(self):
        self.assertParseError(HEADER.replace("yes", "no"), "1", "'expressible' must be")
        self.assertParseError(HEADER.replace("yes", "no: impossible") + GOOD_DIFF, "7", "has a diff")
        b = bugbench.parse_patch(self.write(HEADER.replace("yes", "no: impossible here")))
        self.assertFalse(b.expressible)

    def test_busted_flag_is_refused(self):
        diff = GOOD_DIFF.replace("+// BUGBENCH_REACHED();", "+// BUGBENCH_REACHED(); busted().x = 1;")
        self.assertParseError(HEADER + diff, "12", "busted() flag")

    def test_canary_is_required(self):
        self.assertParseError(HEADER + GOOD_DIFF.replace("BUGBENCH_REACHED();", "nothing"), "7",
                              "no BUGBENCH_REACHED()")

    def test_duplicate_ids(self):
        d = Path(tempfile.mkdtemp())
        (d / "a.patch").write_text(HEADER + GOOD_DIFF)
        (d / "b.patch").write_text(HEADER + GOOD_DIFF)
        with self.assertRaises(bugbench.PatchError) as cm:
            bugbench.load_bugs(d)
        self.assertIn("also used by", str(cm.exception))


class CheckTest(unittest.TestCase):
    def run_check(self, text: str) -> subprocess.CompletedProcess:
        d = Path(tempfile.mkdtemp())
        (d / "99-test.patch").write_text(text)
        return subprocess.run([sys.executable, str(Path(bugbench.__file__)), "check", "--bugs", str(d)],
                              capture_output=True, text=True)

    def test_applying_patch_passes(self):
        r = self.run_check(HEADER + GOOD_DIFF)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("99-test.patch: applies", r.stdout)

    def test_stale_patch_fails(self):
        stale = GOOD_DIFF.replace(" // SPDX-License-Identifier: MIT", " // SPDX-License-Identifier: GPL")
        r = self.run_check(HEADER + stale)
        self.assertEqual(r.returncode, 1)
        self.assertIn("DOES NOT APPLY", r.stdout)


class ReproTest(unittest.TestCase):
    """A failing replay test names its scenario; its size is counted without comments."""

    def test_regress_input_and_size(self):
        d = Path(tempfile.mkdtemp())
        (d / "corpus/regressions/fuzz_sched").mkdir(parents=True)
        scn = d / "corpus/regressions/x-y.scn"
        scn.write_text("# a comment\nmkdir /a\n\nT1: rmdir /a  # trailing\n"
                       "schedule list\npreempt T1 op 2 seam 1 -> T0\n")
        (d / "corpus/regressions/fuzz_sched/abc").write_bytes(b"\x01\x00")
        self.assertEqual(bugbench.regress_input(d, "fuzz-regress.scenario.x-y"), scn)
        self.assertEqual(bugbench.regress_input(d, "fuzz-regress.fuzz_sched.abc"),
                         d / "corpus/regressions/fuzz_sched/abc")
        self.assertIsNone(bugbench.regress_input(d, "fuzz-regress.scenario.missing"))
        self.assertIsNone(bugbench.regress_input(d, "StatTest.Something"))
        self.assertEqual(bugbench.scenario_size(d, scn), (2, 1))


class StreamTest(unittest.TestCase):
    def test_first_marker_and_stop(self):
        log = Path(tempfile.mkdtemp()) / "log"
        # Prints a report line, then would run for a minute: the runner must stop it.
        script = "import time,sys; print('hello'); print('!!! planted'); sys.stdout.flush(); time.sleep(60)"
        r = btlib.run_streaming([sys.executable, "-c", script], cwd="/", env=None, timeout=30, log=log,
                                markers=btlib.REPORT_MARKERS, stop_after_marker=0.5)
        self.assertEqual(r.first_marker_line, "!!! planted")
        self.assertTrue(r.killed_by_us)
        self.assertFalse(r.timed_out)
        self.assertLess(r.seconds, 20)
        self.assertIn("hello", log.read_text())

    def test_timeout(self):
        log = Path(tempfile.mkdtemp()) / "log"
        r = btlib.run_streaming([sys.executable, "-c", "import time; time.sleep(60)"], cwd="/", env=None,
                                timeout=0.5, log=log)
        self.assertTrue(r.timed_out)
        self.assertIsNone(r.returncode)


ASAN_OUT = """op 1: mkdir /a
op 2: T1: rmdir /a
=================================================================
==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 at pc 0x1 bp 0x2 sp 0x3
READ of size 8 at 0x602000000010 thread T0
    #0 0x55d0 in blk::blkg_lookup(blk::blkcg*, blk::request_queue*) /src/impl/block/blkg.cc:71:3
    #1 0x55d1 in kern::kreport(kern::ReportKind) /src/impl/kern/report.cc:10:3
    #2 0x55d2 in blk::blkg_tryget_closest(blk::bio*) /src/impl/block/blk_core.cc:99:7
    #3 0x55d3 in scenario::World::exec(scenario::Op const&, int) /src/impl/scenario/exec.cc:380:3
    #4 0x55d4 in LLVMFuzzerTestOneInput /src/fuzz/fuzz_ops.cc:30:3
"""

REPORT_OUT = """op 1: mkdir /a
op 2: bio b1 d0 read 512
op 3: submit b1
==== blkcg-torture report: ORACLE ====
signature: io.stat-conservation /a
"""


class TriageTest(unittest.TestCase):
    def test_sanitizer_report(self):
        kind, frames, op = triage.parse_crash(ASAN_OUT)
        self.assertEqual(kind, "AddressSanitizer: heap-use-after-free")
        # Project frames only, the report sink skipped, innermost first, at most three.
        self.assertEqual(frames, ["blk::blkg_lookup", "blk::blkg_tryget_closest", "scenario::World::exec"])
        self.assertEqual(op, "rmdir")

    def test_blkcg_report(self):
        kind, frames, op = triage.parse_crash(REPORT_OUT)
        self.assertEqual(kind, "ORACLE io.stat-conservation /a")
        self.assertEqual(op, "submit")

    def test_signature_ignores_addresses(self):
        other = ASAN_OUT.replace("0x602000000010", "0x7fff00001234").replace("==123==", "==999==")
        a = triage.signature(*triage.parse_crash(ASAN_OUT))
        b = triage.signature(*triage.parse_crash(other))
        self.assertEqual(a, b)
        self.assertEqual(triage.sig_id(a), triage.sig_id(b))
        c = triage.signature(*triage.parse_crash(ASAN_OUT.replace("T1: rmdir", "attach")))
        self.assertNotEqual(a, c)


    def test_function_names(self):
        self.assertEqual(triage.function_name(
            "void kern::llist_for_each_safe<blk::f(int)::$_0>(kern::llist_node*, blk::f(int)::$_0)"),
            "kern::llist_for_each_safe")
        self.assertEqual(triage.function_name("blk::f(int)::$_0::operator()(kern::llist_node*) const"),
                         "blk::f::$_0::operator")

    def test_concurrent_crash_is_the_crashed_tasks_operation(self):
        # T7 was preempted inside its write; T1 started more operations before T7 resumed
        # and crashed. ASan's report is followed by the executor's death-callback line, a
        # kern report carries its context line: either names T7.
        out = ("op 1: disk_alloc d0 8:16\nop 2: T7: write /c0/io.max 8:16 rbps=1\n"
               "op 3: T1: disk_release d0\nop 4: T1: mkdir /c1\n" + ASAN_OUT.split("\n", 2)[2] +
               "crashed in task: T4(T7/cpu2) preempt=0 softirq=0\n")
        self.assertEqual(triage.parse_crash(out)[2], "write")
        rep = ("op 1: T2: mkdir /a\nop 2: T1: attach 0 /a\n==== blkcg-torture report: WARN ====\n"
               "signature: warn blkg.cc:12\nx\n  context: T3(T2/cpu1) preempt=0\n")
        self.assertEqual(triage.parse_crash(rep)[2], "mkdir")
        # A task with no operation line of its own: the last operation started, as before.
        self.assertEqual(triage.parse_crash(out.replace("(T7/", "(T5/"))[2], "mkdir")

    def test_teardown_is_an_operation(self):
        out = REPORT_OUT.replace("==== blkcg", "op end: quiesce\n==== blkcg")
        self.assertEqual(triage.parse_crash(out)[2], "quiesce")


class CampaignTest(unittest.TestCase):
    def test_merge_waits_for_a_target_that_never_ran(self):
        # A 110-minute campaign died at its first merge time (1800 s): with one job and four
        # targets in 600 s slices, the fourth had not run yet and had no corpus directory.
        d = Path(tempfile.mkdtemp())
        args = argparse.Namespace(dir=str(d), targets="fuzz_scenario,fuzz_ops", seed=1, engine="libfuzzer",
                                  sanitizers="asan", merge_every=0)
        c = campaign.Campaign(args)
        self.assertEqual(c.pick_target(), ("fuzz_scenario", "fuzz"))  # nothing to merge yet
        (d / "corpus/fuzz_ops").mkdir()
        (d / "corpus/fuzz_ops/x").write_bytes(b"x")
        self.assertEqual(c.pick_target(), ("fuzz_ops", "merge"))


    def test_a_merge_killed_between_its_renames_loses_nothing(self):
        d = Path(tempfile.mkdtemp())
        (d / "corpus/.fuzz_ops.old").mkdir(parents=True)
        (d / "corpus/.fuzz_ops.old/a").write_bytes(b"a")
        (d / "corpus/.fuzz_ops.merging").mkdir()
        (d / "corpus/.fuzz_ops.merging/a").write_bytes(b"a")
        (d / "corpus/fuzz_sched").mkdir()  # killed after both renames: keep the merged one
        (d / "corpus/fuzz_sched/b").write_bytes(b"b")
        (d / "corpus/.fuzz_sched.old").mkdir()
        args = argparse.Namespace(dir=str(d), targets="fuzz_ops,fuzz_sched", seed=1, engine="libfuzzer",
                                  sanitizers="asan", merge_every=0)
        campaign.Campaign(args)
        self.assertEqual(sorted(p.name for p in (d / "corpus").iterdir()), ["fuzz_ops", "fuzz_sched"])
        self.assertEqual((d / "corpus/fuzz_ops/a").read_bytes(), b"a")
        self.assertEqual((d / "corpus/fuzz_sched/b").read_bytes(), b"b")


class JUnitTest(unittest.TestCase):
    def test_parses_and_counts(self):
        p = Path(tempfile.mkdtemp()) / "j.xml"
        cases = [btlib.JUnitCase("c", "ok", 1.0), btlib.JUnitCase("c", "bad <&>", 2.0, failure="x\"y", output="<out>"),
                 btlib.JUnitCase("c", "skip", 0.0, skipped="not run")]
        btlib.write_junit(p, [btlib.junit_suite("s", cases)])
        suite = ET.parse(p).getroot().find("testsuite")
        self.assertEqual((suite.get("tests"), suite.get("failures"), suite.get("skipped")), ("3", "1", "1"))
        self.assertEqual(suite.findall("testcase")[1].get("name"), "bad <&>")


if __name__ == "__main__":
    unittest.main(verbosity=2)

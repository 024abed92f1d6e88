#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""blkcg-torture bugbench: the bug-injection benchmark.

Applies each bench/bugs/*.patch (format: bench/bugs/README.md) to a scratch copy of the
tree, builds what the detectors need, runs the detectors in order within a budget and
records per bug: triggered (the patch's BUGBENCH_REACHED() canary ran), detected (a
report fired), the first detector that fired, time to detection over K trials, and the
reproducer (a minimized scenario for the fuzzers, the failing test for the test suites).

  bugbench.py run [--bugs DIR] [--detectors LIST] [--budget S] [--trials K] [--only IDS]
                  [--all-detectors] [--seed N] [--out DIR]
  bugbench.py check [--bugs DIR]    every patch parses and applies to the tree (a CTest)
  bugbench.py list [--bugs DIR]     the patches and their metadata

Results go to build/bugbench/runs/<UTC time>/ (results.json, results.md, one directory
per bug with logs and reproducers); an existing run directory is never reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import btlib  # noqa: E402

ROOT = btlib.ROOT
REQUIRED_KEYS = ("bugbench", "commit", "title", "class", "invariant", "expressible")
KNOWN_KEYS = set(REQUIRED_KEYS) | {"expect", "note"}

# Detectors in the order a user pays for them: deterministic test suites first, quickest
# first (asan-ubsan build), then the fuzzers from the embedded seed corpus (fuzz build), then the TSan
# torture. "deterministic" ones run once; their result stands for every trial.
DETECTORS = {
    "regress": {"kind": "ctest", "label": "^fuzz-regress$", "preset": "asan-ubsan",
                "deterministic": True},
    "conformance": {"kind": "ctest", "label": "^conformance$", "preset": "asan-ubsan",
                    "deterministic": True},
    "prop": {"kind": "ctest", "label": "^prop$", "preset": "asan-ubsan", "deterministic": True},
    "unit": {"kind": "ctest", "label": "^unit$", "preset": "asan-ubsan", "deterministic": True},
    # Real threads on real hardware (store-load reorders): a run may or may not hit.
    "litmus": {"kind": "ctest", "label": "^litmus$", "preset": "asan-ubsan", "deterministic": False},
    "fuzz_ops": {"kind": "fuzz", "preset": "fuzz", "deterministic": False},
    "fuzz_sched": {"kind": "fuzz", "preset": "fuzz", "deterministic": False},
    "torture": {"kind": "torture", "preset": "tsan", "deterministic": False},
}
DEFAULT_DETECTORS = list(DETECTORS)


class PatchError(Exception):
    pass


@dataclass
class Bug:
    path: Path
    meta: dict
    notes: list = field(default_factory=list)
    diff: str = ""
    files: list = field(default_factory=list)  # paths the diff touches

    @property
    def id(self) -> str:
        return self.meta["bugbench"]

    @property
    def expressible(self) -> bool:
        return self.meta["expressible"] == "yes"


def parse_patch(path: Path) -> Bug:
    """Parses one patch file; a PatchError names the file, the line and the reason."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as e:
        raise PatchError(f"{path}: cannot read: {e}")
    meta: dict = {}
    notes: list = []
    diff_start = None
    for i, line in enumerate(lines, 1):
        if line.startswith("diff --git "):
            diff_start = i - 1
            break
        s = line.rstrip("\n")
        if not s.strip():
            continue
        m = re.match(r"#\s*([a-z]+):\s*(.*)$", s)
        if not m:
            raise PatchError(f"{path}:{i}: expected '# key: value' before the diff, got {s!r}")
        key, value = m.group(1), m.group(2).strip()
        if key not in KNOWN_KEYS:
            raise PatchError(f"{path}:{i}: unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
        if key == "note":
            notes.append(value)
            continue
        if key in meta:
            raise PatchError(f"{path}:{i}: duplicate key {key!r}")
        if not value:
            raise PatchError(f"{path}:{i}: empty value for {key!r}")
        meta[key] = value
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise PatchError(f"{path}:1: missing required key {key!r}")
    expr = meta["expressible"]
    if expr != "yes" and not re.match(r"no:\s*\S", expr):
        raise PatchError(f"{path}:1: 'expressible' must be 'yes' or 'no: <reason>', got {expr!r}")
    bug = Bug(path=path, meta=meta, notes=notes)
    if diff_start is None:
        if bug.expressible:
            raise PatchError(f"{path}:{len(lines)}: 'expressible: yes' but the file has no diff")
        return bug
    if not bug.expressible:
        raise PatchError(f"{path}:{diff_start + 1}: 'expressible: no' but the file has a diff")
    bug.diff = "".join(lines[diff_start:])
    bug.files = sorted(set(re.findall(r"^\+\+\+ b/(\S+)$", bug.diff, re.M)) |
                       set(re.findall(r"^--- a/(\S+)$", bug.diff, re.M)))
    added = [(diff_start + n + 1, l) for n, l in enumerate(lines[diff_start:])
             if l.startswith("+") and not l.startswith("+++")]
    for lineno, l in added:
        if "busted()" in l:
            raise PatchError(f"{path}:{lineno}: the diff uses a busted() flag; change the code itself")
    if not any("BUGBENCH_REACHED()" in l for _, l in added):
        raise PatchError(f"{path}:{diff_start + 1}: the diff adds no BUGBENCH_REACHED() on the buggy path")
    return bug


def load_bugs(bugs_dir: Path, only: list | None = None) -> list:
    files = sorted(bugs_dir.glob("*.patch"))
    if not files:
        raise PatchError(f"{bugs_dir}: no *.patch files")
    bugs = [parse_patch(f) for f in files]
    seen: dict = {}
    for b in bugs:
        if b.id in seen:
            raise PatchError(f"{b.path}:1: bugbench id {b.id!r} also used by {seen[b.id]}")
        seen[b.id] = b.path
    if only:
        unknown = set(only) - set(seen)
        if unknown:
            raise PatchError(f"--only: no patch with id {', '.join(sorted(unknown))} in {bugs_dir}")
        bugs = [b for b in bugs if b.id in only]
    return bugs


def git_apply(tree: Path, patch_text: str, check: bool) -> tuple[bool, str]:
    args = ["git", "apply", "--whitespace=nowarn"] + (["--check"] if check else []) + ["-"]
    p = subprocess.run(args, cwd=tree, input=patch_text, text=True, capture_output=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


# ---------------------------------------------------------------------------------------------
# The scratch tree: a copy of the working tree (committed or not) under build/bugbench/src,
# taken once when the run starts (edits made while a long run goes on do not leak into
# it). Files are rewritten only when their content differs, so unchanged files keep their
# mtimes and each bug's build is incremental; a patched file gets a new mtime on the way in
# and on the way out.

class Scratch:
    def __init__(self, path: Path, snapshot: dict | None = None):
        self.path = path
        self.created: set = set()
        self.snapshot = snapshot if snapshot is not None else \
            {rel: ((ROOT / rel).read_bytes(), (ROOT / rel).stat().st_mode) for rel in btlib.source_files()}

    def sync(self) -> None:
        files = list(self.snapshot)
        for rel in files:
            dst = self.path / rel
            data, mode = self.snapshot[rel]
            if dst.is_file() and dst.read_bytes() == data:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            os.chmod(dst, mode & 0o7777)
        known = set(files)
        for rel in list(self.created):
            if rel not in known:
                (self.path / rel).unlink(missing_ok=True)
        self.created.clear()

    def apply(self, bug: Bug) -> tuple[bool, str]:
        # The scratch tree lies inside the project's own checkout (build/ is ignored), and
        # git apply run below a repository's top applies paths relative to that top and
        # skips the rest without a word: give the scratch tree a repository of its own.
        if not (self.path / ".git").exists():
            subprocess.run(["git", "init", "-q", str(self.path)], check=True)
        ok, out = git_apply(self.path, bug.diff, check=False)
        if not ok:
            return ok, out
        self.created = {f for f in bug.files if f not in self.snapshot}
        unchanged = [f for f in bug.files if f in self.snapshot and (self.path / f).exists() and
                     self.snapshot[f][0] == (self.path / f).read_bytes()]
        if unchanged:
            return False, f"git apply left {', '.join(unchanged)} unchanged"
        return True, out


# ---------------------------------------------------------------------------------------------

@dataclass
class DetectorRun:
    detector: str
    detected: bool = False
    seconds: float = 0.0           # wall time until the first report (or the whole run)
    triggered: bool = False
    finding: str = ""              # first failing test, or the report's first line
    reproducer: str = ""           # path of the minimized scenario, or a command line
    repro_ops: int | None = None
    repro_preempts: int | None = None
    signature: str = ""
    error: str = ""                # the detector could not run (build failure, ...)
    unrelated: str = ""            # a finding that also reproduces without the patch


def reached_file(out: Path, tag: str) -> Path:
    p = out / f"reached-{tag}"
    p.unlink(missing_ok=True)
    return p


def regress_input(scratch: Path, test: str) -> Path | None:
    """The input replayed by a fuzz-regress CTest (CMakeLists.txt names them
    fuzz-regress.scenario.<file stem> and fuzz-regress.<target>.<file>), or None."""
    m = re.fullmatch(r"fuzz-regress\.(scenario|fuzz_\w+)\.(.+)", test)
    if not m:
        return None
    kind, base = m.groups()
    if kind == "scenario":
        cands = [scratch / "corpus" / d / f"{base}.scn" for d in ("regressions", "scenarios")]
    else:
        cands = [scratch / "corpus" / d / base for d in (kind, f"regressions/{kind}")]
    return next((c for c in cands if c.is_file()), None)


def scenario_size(scratch: Path, path: Path) -> tuple[int | None, int | None]:
    """(operations, preemptions) of a scenario file, text or binary (decoded by the scratch
    tree's scenario tool); (None, None) if it cannot be decoded."""
    data = path.read_bytes()
    if data[:1] == b"\x01":  # the binary form's version byte (impl/scenario/binary.h)
        tool = scratch / "build/asan-ubsan/tools/scenario_tool"
        r = subprocess.run([str(tool), "decode", str(path)], capture_output=True, text=True,
                           errors="replace")
        if r.returncode != 0:
            return None, None
        text = r.stdout
    else:
        text = data.decode(errors="replace")
    lines = [l.split("#", 1)[0].strip() for l in text.splitlines()]
    lines = [l for l in lines if l]
    preempts = sum(1 for l in lines if l.startswith("preempt"))
    ops = sum(1 for l in lines if not l.startswith(("preempt", "schedule")))
    return ops, preempts


def fails_on_clean(clean_tool: Path, scn: Path) -> bool:
    """Whether a scenario also fails on the unpatched tree (its scenario tool), with the
    flags BLKCG_BUSTED plants in the fuzzers planted there too."""
    planted = [f"--busted={f}" for f in os.environ.get("BLKCG_BUSTED", "").split(",") if f]
    r = subprocess.run([str(clean_tool), "run", *planted, str(scn)], capture_output=True,
                       timeout=600, env=dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"))
    return r.returncode != 0


def run_ctest(scratch: Path, det: dict, out: Path, cap: float, jobs: int,
              minimize_time: float = 0, clean_tool: Path | None = None) -> DetectorRun:
    name = det["name"]
    reached = reached_file(out, name)
    env = dict(os.environ, BLKCG_BUGBENCH_REACHED=str(reached))
    cmd = ["ctest", "--preset", det["preset"], "-L", det["label"], "--stop-on-failure",
           "-j", str(jobs)]
    # ctest runs the tests that failed last time first, and orders the rest by past cost:
    # forget both, so a bug's time to detection does not depend on the bug before it.
    tmp = scratch / "build" / det["preset"] / "Testing" / "Temporary"
    for f in list(tmp.glob("LastTestsFailed*.log")) + [tmp / "CTestCostData.txt"]:
        f.unlink(missing_ok=True)
    res = btlib.run_streaming(cmd, cwd=scratch, env=env, timeout=cap, log=out / f"{name}.log")
    run = DetectorRun(detector=name, seconds=res.seconds, triggered=reached.exists())
    failed = re.findall(r"Test\s+#\d+:\s+(\S+)\s+\.*\**\s*(Failed|Exception|Timeout|Subprocess aborted|"
                        r"Not Run|SEGFAULT|Child aborted)", res.output)
    if res.timed_out:
        run.error = f"ctest did not finish within {cap:.0f} s"
    if failed:
        run.detected = True
        run.finding = failed[0][0]
        run.reproducer = f"ctest --preset {det['preset']} -R '^{re.escape(failed[0][0])}$' --output-on-failure"
        # A failing replay test names its scenario: that file is the reproducer, with its size.
        scn = regress_input(scratch, failed[0][0])
        if scn is not None:
            run.reproducer = str(scn.relative_to(scratch))
            run.repro_ops, run.repro_preempts = scenario_size(scratch, scn)
            # The failing replay was minimized for some other bug (or is a seed): shrink it
            # for this one, on the patched build, keeping its signature.
            tool = scratch / "build/asan-ubsan/tools/scenario_tool"
            mini = out / f"{name}-repro.scn"
            if minimize_time > 0 and tool.exists():
                m = btlib.minimize(tool, scn, mini, minimize_time, cwd=scratch)
                # Kept only if it passes without the patch: an expectation written for the
                # whole scenario can fail the same way once operations are gone, bug or not.
                faithful = clean_tool is None or not fails_on_clean(clean_tool, mini)
                if not faithful:
                    # Then shrink what differs from the clean tree's run instead (the
                    # expectations dropped, the clean tree's results written back).
                    mini.unlink(missing_ok=True)
                    m = btlib.minimize(tool, scn, mini, minimize_time, cwd=scratch, against=clean_tool)
                    faithful = not fails_on_clean(clean_tool, mini)
                if m.ops is not None and mini.exists() and faithful:
                    run.reproducer = str(mini)
                    run.repro_ops, run.repro_preempts, run.signature = m.ops, m.preempts, m.signature
    elif res.returncode not in (0, None) and not res.timed_out:
        run.detected = True
        run.finding = "ctest failed (no failing test named; see log)"
    return run


def run_fuzz(scratch: Path, det: dict, out: Path, budget: float, seed: int,
             minimize_time: float, clean_tool: Path | None) -> DetectorRun:
    name = det["name"]
    work = out / f"{name}-corpus"
    art = out / f"{name}-artifacts"
    work.mkdir(parents=True, exist_ok=True)
    art.mkdir(parents=True, exist_ok=True)
    reached = reached_file(out, name)
    env = dict(os.environ, BLKCG_BUGBENCH_REACHED=str(reached),
               ASAN_OPTIONS="abort_on_error=1:detect_leaks=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    cmd = [str(scratch / "build/fuzz/fuzz" / name), str(work), str(scratch / "corpus" / name),
           f"-max_total_time={int(budget)}", f"-seed={seed}",
           f"-dict={scratch / 'fuzz' / (name + '.dict')}", btlib.LEN_CONTROL, f"-artifact_prefix={art}/",
           "-print_final_stats=1"]
    res = btlib.run_streaming(cmd, cwd=out, env=env, timeout=budget + 60, log=out / f"{name}.log",
                              markers=btlib.REPORT_MARKERS)
    run = DetectorRun(detector=name, seconds=res.first_marker_seconds or res.seconds,
                      triggered=reached.exists())
    crashes = sorted(p for p in art.iterdir() if p.name.split("-")[0] in ("crash", "leak", "timeout", "oom"))
    if not crashes:
        return run
    run.detected = True
    run.finding = res.first_marker_line or crashes[0].name
    tool = scratch / "build/asan-ubsan/tools/scenario_tool"
    scn = out / f"{name}-repro.scn"
    m = btlib.minimize(tool, crashes[0], scn, minimize_time, cwd=scratch)
    run.reproducer = str(scn) if scn.exists() else str(crashes[0])
    run.repro_ops, run.repro_preempts, run.signature = m.ops, m.preempts, m.signature
    # Not this bug's detection if it also crashes the unpatched tree (a bug of main the
    # fuzzer happened to meet): replayed with the clean tree's scenario tool.
    if clean_tool is not None:
        if fails_on_clean(clean_tool, Path(run.reproducer)):
            run.detected = False
            run.unrelated = (f"reproduces without the patch: {run.finding} "
                             f"(kept: {run.reproducer})")
    return run


def run_torture(scratch: Path, det: dict, out: Path, budget: float, seed: int) -> DetectorRun:
    name = det["name"]
    reached = reached_file(out, name)
    env = dict(os.environ, BLKCG_BUGBENCH_REACHED=str(reached),
               TSAN_OPTIONS="halt_on_error=1:detect_deadlocks=0")
    scenarios = sorted(p.stem for p in (scratch / "stress/scenarios").glob("*.conf"))
    # The default scenario first, then the others; the budget is shared evenly.
    scenarios.sort(key=lambda s: (s != "default", s))
    each = max(3.0, budget / len(scenarios))
    run = DetectorRun(detector=name)
    spent = 0.0
    for sc in scenarios:
        cmd = [str(scratch / "build/tsan/stress/blkcg_torture"), f"--seconds={int(each)}",
               f"--seed={seed}", f"--scenario={sc}", f"--scenario-dir={scratch / 'stress/scenarios'}",
               "--stat-interval=10"]
        res = btlib.run_streaming(cmd, cwd=out, env=env, timeout=each + 120,
                                  log=out / f"{name}-{sc}.log", markers=btlib.REPORT_MARKERS,
                                  stop_after_marker=2.0)
        failed = res.first_marker_line is not None or "End of test: FAILURE" in res.output or \
            (res.returncode not in (0, None) and not res.killed_by_us)
        if failed:
            run.detected = True
            run.seconds = spent + (res.first_marker_seconds or res.seconds)
            run.finding = res.first_marker_line or "End of test: FAILURE"
            run.reproducer = " ".join(["build/tsan/stress/blkcg_torture"] + cmd[1:4] +
                                      ["--scenario-dir=stress/scenarios"])
            break
        spent += res.seconds
    if not run.detected:
        run.seconds = spent
    run.triggered = reached.exists()
    return run


# ---------------------------------------------------------------------------------------------

def bugs_of(args, cmd: str, only: list | None = None) -> list | None:
    """The patches of --bugs (only: these ids), or None after saying why they cannot be read."""
    try:
        return load_bugs(Path(args.bugs), only)
    except PatchError as e:
        print(f"bugbench {cmd}: {e}", file=sys.stderr)
        return None


def cmd_check(args) -> int:
    bugs = bugs_of(args, "check")
    if bugs is None:
        return 1
    bad = 0
    for b in bugs:
        if not b.expressible:
            print(f"{b.path.name}: not expressible ({b.meta['expressible'][3:].strip()})")
            continue
        ok, msg = git_apply(ROOT, b.diff, check=True)
        print(f"{b.path.name}: {'applies' if ok else 'DOES NOT APPLY'}")
        if not ok:
            print("  " + msg.replace("\n", "\n  "), file=sys.stderr)
            bad += 1
    print(f"bugbench check: {len(bugs)} patch(es), {bad} not applying")
    return 1 if bad else 0


def cmd_list(args) -> int:
    bugs = bugs_of(args, "list")
    if bugs is None:
        return 1
    for b in bugs:
        print(f"{b.id:>4}  {b.path.name:44} {b.meta['class'][:30]:30} "
              f"{'' if b.expressible else '(not expressible) '}{b.meta['title'][:60]}")
    return 0


def bench_one(bug: Bug, scratch: Scratch, dets: list, args, out: Path, built: dict) -> dict:
    rec = {"id": bug.id, "file": bug.path.name, "title": bug.meta["title"],
           "commit": bug.meta["commit"], "class": bug.meta["class"],
           "invariant": bug.meta["invariant"], "expressible": bug.meta["expressible"],
           "applies": None, "builds": None, "triggered": False, "detected": False,
           "detector": None, "ttd_median": None, "ttd_worst": None, "trials": [],
           "detectors": {}, "reproducer": None, "repro_ops": None}
    if not bug.expressible:
        return rec
    out.mkdir(parents=True)
    scratch.sync()
    ok, msg = scratch.apply(bug)
    rec["applies"] = ok
    if not ok:
        (out / "apply.log").write_text(msg + "\n")
        return rec
    try:
        built.clear()
        deterministic: dict = {}
        for trial in range(args.trials):
            seed = args.seed + trial
            total = 0.0
            trial_rec = {"trial": trial, "seed": seed, "detector": None, "ttd": None}
            for name in dets:
                det = dict(DETECTORS[name], name=name)
                if det["deterministic"] and name in deterministic:
                    run = deterministic[name]
                else:
                    err = ensure_built(scratch.path, det, built, out, args.jobs)
                    tdir = out / (name if det["deterministic"] else f"{name}-trial{trial}")
                    tdir.mkdir(exist_ok=True)
                    if err:
                        run = DetectorRun(detector=name, error=err)
                    elif det["kind"] == "ctest":
                        run = run_ctest(scratch.path, det, tdir, args.test_cap, args.jobs,
                                        args.minimize_time, args.clean_tool)
                    elif det["kind"] == "fuzz":
                        run = run_fuzz(scratch.path, det, tdir, args.budget, seed, args.minimize_time,
                                       args.clean_tool)
                    else:
                        run = run_torture(scratch.path, det, tdir, args.budget, seed)
                    if det["deterministic"]:
                        deterministic[name] = run
                if run.unrelated:
                    rec.setdefault("unrelated", []).append(f"{name} trial {trial}: {run.unrelated}")
                if run.reproducer and det["kind"] != "torture" and not run.reproducer.startswith("git apply"):
                    # Reproduce on a clean tree: the patch first, then the detector's line.
                    how = run.reproducer if run.reproducer.startswith("ctest") else \
                        f"tools/blkcg-torture replay {run.reproducer}"
                    run.reproducer = f"git apply {bug.path} && {how}"
                rec["detectors"].setdefault(name, []).append(run.__dict__)
                rec["triggered"] = rec["triggered"] or run.triggered
                if run.error and not run.detected:
                    rec.setdefault("errors", []).append(f"{name}: {run.error}")
                total += run.seconds
                if run.detected and trial_rec["detector"] is None:
                    trial_rec.update(detector=name, ttd=round(total, 1))
                    if rec["reproducer"] is None or (run.repro_ops or 10**9) < (rec["repro_ops"] or 10**9):
                        rec["reproducer"], rec["repro_ops"] = run.reproducer, run.repro_ops
                    if not args.all_detectors:
                        break
            rec["trials"].append(trial_rec)
            print(f"  trial {trial}: " + (f"detected by {trial_rec['detector']} after {trial_rec['ttd']} s"
                                          if trial_rec["detector"] else "not detected"), flush=True)
        rec["builds"] = "build" not in " ".join(rec.get("errors", []))
        ttds = [t["ttd"] for t in rec["trials"] if t["ttd"] is not None]
        rec["detected"] = bool(ttds)
        if ttds:
            rec["ttd_median"] = round(statistics.median(ttds), 1)
            rec["ttd_worst"] = round(max(ttds), 1) if len(ttds) == len(rec["trials"]) else None
            firsts = [t["detector"] for t in rec["trials"] if t["detector"]]
            rec["detector"] = max(set(firsts), key=firsts.count)
    finally:
        scratch.sync()  # back to the clean tree (patched files get fresh mtimes)
        built.clear()
    return rec


def ensure_built(tree: Path, det: dict, built: dict, out: Path, jobs: int) -> str:
    """Builds the preset a detector needs, once per bug; returns an error or ''."""
    preset = det["preset"]
    targets = None
    if det["kind"] == "fuzz":
        targets = [det["name"]]
    elif det["kind"] == "torture":
        targets = ["blkcg_torture"]
    key = (preset, tuple(targets or ()))
    if key in built:
        return built[key]
    err = btlib.build(tree, preset, targets, out / f"build-{preset}.log", jobs)
    if not err and det["kind"] == "fuzz" and ("asan-ubsan", ("scenario_tool",)) not in built:
        # The minimizer runs the asan-ubsan scenario tool.
        e2 = btlib.build(tree, "asan-ubsan", ["scenario_tool"], out / "build-asan-ubsan-tool.log", jobs)
        built[("asan-ubsan", ("scenario_tool",))] = e2
        err = e2
    built[key] = err
    return err


def cmd_run(args) -> int:
    bugs = bugs_of(args, "run", args.only.split(",") if args.only else None)
    if bugs is None:
        return 2
    dets = args.detectors.split(",")
    unknown = [d for d in dets if d not in DETECTORS]
    if unknown:
        print(f"bugbench: unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}",
              file=sys.stderr)
        return 2
    # Absolute: detectors run with other working directories (ctest in the build tree).
    out = Path(args.out).resolve() if args.out else \
        ROOT / "build/bugbench/runs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=False)  # never reuse a run's directory
    scratch = Scratch(ROOT / "build/bugbench/src")
    scratch.path.mkdir(parents=True, exist_ok=True)
    scratch.sync()
    # The unpatched tree's scenario tool, to tell a fuzzer's finding of the bug from one of
    # main's own bugs met on the way, and a faithful minimized replay from one that fails
    # without the patch too (built once per run, from the same snapshot).
    args.clean_tool = None
    if any(DETECTORS[d]["kind"] == "fuzz" for d in dets) or "regress" in dets:
        clean = Scratch(ROOT / "build/bugbench/clean", scratch.snapshot)
        clean.path.mkdir(parents=True, exist_ok=True)
        clean.sync()
        err = btlib.build(clean.path, "asan-ubsan", ["scenario_tool"], out / "build-clean.log", args.jobs)
        if err:
            print(f"bugbench: {err}; fuzz findings are not checked against the clean tree", file=sys.stderr)
        else:
            args.clean_tool = clean.path / "build/asan-ubsan/tools/scenario_tool"
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detectors": dets,
            "budget": args.budget, "trials": args.trials, "seed": args.seed,
            "all_detectors": args.all_detectors, "bugs_dir": str(Path(args.bugs).resolve()),
            "tree": btlib.tree_id()}
    results = []
    for bug in bugs:
        print(f"== bug {bug.id} ({bug.path.name}): {bug.meta['title']}", flush=True)
        t0 = time.monotonic()
        rec = bench_one(bug, scratch, dets, args, out / f"bug-{bug.id}", {})
        rec["wall"] = round(time.monotonic() - t0, 1)
        results.append(rec)
        write_results(out, meta, results)
    print(f"bugbench: results in {out}/results.md and results.json")
    print((out / "results.md").read_text())
    return 0


def fired(r: dict) -> str:
    """Every detector that fired in some trial, with how many seconds it took (first trial)."""
    out = []
    for name, runs in r["detectors"].items():
        hits = [x for x in runs if x["detected"]]
        if hits:
            out.append(f"{name} ({hits[0]['seconds']:.1f} s, {len(hits)}/{len(runs)})")
    return ", ".join(out) or "-"


def fmt_s(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def write_results(out: Path, meta: dict, results: list) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "bugs": results}, indent=2) + "\n")
    tmp.replace(out / "results.json")
    lines = [f"# bugbench, {meta['started']}", "",
             f"Detectors in order: {', '.join(meta['detectors'])}; budget {meta['budget']} s per "
             f"randomized detector per trial; {meta['trials']} trial(s); seeds from {meta['seed']}; "
             f"tree {meta['tree']}.", "",
             "| # | bug | triggered | detected | first detector | median TTD (s) | worst TTD (s) | repro ops "
             "| detectors that fired |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r["expressible"] == "yes":
            status = "not expressible"
            lines.append(f"| {r['id']} | {r['title'][:70]} | - | {status} | - | - | - | - | - |")
            continue
        if not r["applies"]:
            lines.append(f"| {r['id']} | {r['title'][:70]} | - | patch does not apply | - | - | - | - | - |")
            continue
        n_det = sum(1 for t in r["trials"] if t["ttd"] is not None)
        det = f"{n_det}/{len(r['trials'])}"
        lines.append(f"| {r['id']} | {r['title'][:70]} | {'yes' if r['triggered'] else 'no'} | {det} | "
                     f"{r['detector'] or '-'} | {fmt_s(r['ttd_median'])} | {fmt_s(r['ttd_worst'])} | "
                     f"{r['repro_ops'] if r['repro_ops'] is not None else '-'} | {fired(r)} |")
    detected = sum(1 for r in results if r["detected"])
    expressible = sum(1 for r in results if r["expressible"] == "yes")
    lines += ["", f"{detected} of {expressible} expressible bugs detected ({len(results)} patches).", ""]
    for r in results:
        if r["expressible"] != "yes":
            lines.append(f"- {r['id']}: not expressible: {r['expressible'][3:].strip()}")
        elif r.get("errors"):
            lines.append(f"- {r['id']}: " + "; ".join(r["errors"]))
        for u in r.get("unrelated", []):
            lines.append(f"- {r['id']}: not counted, {u}")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(prog="blkcg-torture bugbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "check", "list"):
        p = sub.add_parser(name)
        p.add_argument("--bugs", default=str(ROOT / "bench/bugs"))
        if name == "run":
            p.add_argument("--detectors", default=",".join(DEFAULT_DETECTORS))
            p.add_argument("--budget", type=float, default=300.0,
                           help="seconds per randomized detector per trial (default 300)")
            p.add_argument("--trials", type=int, default=1)
            p.add_argument("--only", help="comma-separated bug ids")
            p.add_argument("--all-detectors", action="store_true",
                           help="run every detector even after one has fired")
            p.add_argument("--seed", type=int, default=1)
            p.add_argument("--out")
            p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
            p.add_argument("--test-cap", type=float, default=900.0,
                           help="hard limit in seconds for one ctest label (default 900)")
            p.add_argument("--minimize-time", type=float, default=60.0)
    args = ap.parse_args()
    return {"run": cmd_run, "check": cmd_check, "list": cmd_list}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""blkcg-torture ci: the bounded gate for pull requests (and this project's .ci/run).

  1. asan-ubsan and tsan builds: every CTest (unit, conformance, prop, every corpus and
     regression replay, the stress-short torture scenarios and the busted variants that
     must fail), with ctest's JUnit output;
  2. fuzz build (libFuzzer + ASan + UBSan): each fuzz target for a fixed number of runs
     from its embedded seed corpus, with a fixed seed, in a fresh work corpus, so a run is
     the same run on every machine (no wall-clock cut-off decides what executes);
  3. the campaign's triage on a planted bug (impl/block/busted.h's reset_wipes_set, which
     a seed input reaches at once): a 30 s campaign must report exactly that crash,
     minimized to at most 10 operations, replaying 5 times out of 5;
  4. the OSS-Fuzz / ClusterFuzzLite build: .clusterfuzzlite/build.sh with the variables
     OSS-Fuzz sets for libFuzzer + ASan must put every target, its dictionary, options and
     seed corpus zip in $OUT, and each target must run the inputs of its zip cleanly;
  5. build/ci/junit.xml (every suite) and build/ci/summary.md; exit status 1 on any failure
     or finding. Crash artifacts of the fuzz step go to artifacts/ci/<target>/ (content-named,
     never overwritten) and the summary names them with their decode command.

Options: --seed N (default 1), --fuzz-scale F (multiplies the per-target run counts,
default 1), --skip-fuzz, --presets LIST (default asan-ubsan,tsan), --jobs N.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import btlib  # noqa: E402

ROOT = btlib.ROOT

# Runs per fuzz target, about 20-40 s each on one core of the reference machine (from
# the fuzzers' own exec/s in the gate: fuzz_ops ~800, fuzz_sched ~1,200, fuzz_iomax ~20k,
# fuzz_scenario ~700 since it also takes
# binary scenarios, whose text forms are long).
FUZZ_RUNS = {"fuzz_ops": 16000, "fuzz_sched": 24000, "fuzz_iomax": 400000, "fuzz_scenario": 30000}


def ctest_step(preset: str, jobs: int, outdir: Path) -> tuple[list, int, int, str]:
    """Builds and tests one preset; returns (junit suites, passed, failed, note)."""
    log = outdir / f"build-{preset}.log"
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    print(f"== {preset}: build ==", flush=True)
    err = btlib.build(ROOT, preset, None, log, jobs)
    if err:
        print(log.read_text()[-6000:])
        case = btlib.JUnitCase(f"{preset}.build", "build", time.monotonic() - t0, failure=err,
                               output=log.read_text()[-20000:])
        return [btlib.junit_suite(f"{preset}.build", [case])], 0, 1, err
    print(f"== {preset}: test ==", flush=True)
    junit = outdir / f"ctest-{preset}.xml"
    junit.unlink(missing_ok=True)
    res = btlib.run_streaming(["ctest", "--preset", preset, "--output-junit", str(junit)], cwd=ROOT,
                              env=dict(os.environ), timeout=45 * 60, log=outdir / f"ctest-{preset}.log",
                              echo=True)
    if not junit.exists():
        case = btlib.JUnitCase(f"{preset}.ctest", "ctest", res.seconds,
                               failure="ctest wrote no JUnit report", output=res.output[-20000:])
        return [btlib.junit_suite(f"{preset}.ctest", [case])], 0, 1, "no JUnit report"
    cases = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        status = tc.get("status", "")
        failure = tc.find("failure")
        skipped = tc.find("skipped")
        out = tc.find("system-out")
        case = btlib.JUnitCase(f"{preset}", tc.get("name", "?"), float(tc.get("time", "0") or 0),
                               output=(out.text or "") if out is not None else "")
        if failure is not None or status == "fail":
            case.failure = (failure.get("message") if failure is not None else None) or "failed"
        elif skipped is not None or status in ("notrun", "disabled"):
            case.skipped = "not run"
        cases.append(case)
    failed = sum(1 for c in cases if c.failure is not None)
    passed = sum(1 for c in cases if c.failure is None and c.skipped is None)
    note = ""
    if not cases:
        failed, note = 1, "no tests ran"
    elif res.returncode not in (0, None) and failed == 0:
        failed, note = 1, f"ctest exited {res.returncode} with no failing test"
    return [btlib.junit_suite(f"ctest.{preset}", cases)], passed, failed, note


def fuzz_step(seed: int, scale: float, jobs: int, outdir: Path) -> tuple[list, list]:
    """Runs each fuzz target; returns (junit cases, findings)."""
    log = outdir / "build-fuzz.log"
    log.unlink(missing_ok=True)
    print("== fuzz: build ==", flush=True)
    err = btlib.build(ROOT, "fuzz", list(FUZZ_RUNS), log, jobs)
    if err:
        print(log.read_text()[-6000:])
        return [btlib.JUnitCase("fuzz", "build", 0, failure=err, output=log.read_text()[-20000:])], [err]
    cases, findings = [], []
    for target, runs in FUZZ_RUNS.items():
        n = max(1, int(runs * scale))
        work = outdir / "fuzz-work" / target
        if work.exists():
            for p in work.iterdir():
                p.unlink()
        work.mkdir(parents=True, exist_ok=True)
        art = ROOT / "artifacts/ci" / target
        art.mkdir(parents=True, exist_ok=True)
        before = set(art.iterdir())
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
        cmd = [ROOT / "build/fuzz/fuzz" / target, work, ROOT / "corpus" / target, f"-runs={n}",
               f"-seed={seed}", f"-dict={ROOT / 'fuzz' / (target + '.dict')}",
               btlib.LEN_CONTROL, f"-artifact_prefix={art}/", "-print_final_stats=1"]
        print(f"== fuzz: {target}, {n} runs, seed {seed} ==", flush=True)
        res = btlib.run_streaming(cmd, cwd=ROOT, env=env, timeout=20 * 60, log=outdir / f"fuzz-{target}.log",
                                  markers=btlib.REPORT_MARKERS)
        new = sorted(set(art.iterdir()) - before)
        stats = btlib.libfuzzer_stats(res.output)
        line = (f"{target}: {stats.get('number_of_executed_units', '?')} runs, "
                f"{stats.get('average_exec_per_sec', '?')} exec/s, rc {res.returncode}")
        print("   " + line, flush=True)
        case = btlib.JUnitCase("fuzz", target, res.seconds, output=res.output[-20000:])
        if res.returncode != 0 or new or res.first_marker_line:
            what = res.first_marker_line or f"exit status {res.returncode}"
            case.failure = what
            artifacts = ", ".join(str(p.relative_to(ROOT)) for p in new) or "none"
            findings.append(f"{target}: {what} (artifacts: {artifacts}; seed {seed}, {n} runs; "
                            f"decode with tools/blkcg-torture decode FILE)")
        cases.append(case)
    return cases, findings


def campaign_smoke(outdir: Path) -> btlib.JUnitCase:
    """The campaign pipeline (restart, triage, minimize, decode, replay) on a planted bug."""
    import json
    import shutil
    d = outdir / "campaign-smoke"
    if d.exists():
        shutil.rmtree(d)
    print("== campaign smoke: fuzz_ops with reset_wipes_set planted, 30 s ==", flush=True)
    env = dict(os.environ, BLKCG_BUSTED="reset_wipes_set")
    res = btlib.run_streaming([sys.executable, ROOT / "tools/campaign.py", "--time", "30", "--targets",
                               "fuzz_ops", "--jobs", "1", "--sanitizers", "asan", "--no-coverage", "--seed", "1",
                               "--dir", d],
                              cwd=ROOT, env=env, timeout=600, log=outdir / "campaign-smoke.log", echo=True)
    case = btlib.JUnitCase("campaign", "planted-reset_wipes_set", res.seconds, output=res.output[-20000:])
    try:
        crashes = json.loads((d / "campaign.json").read_text())["crashes"]
    except (OSError, ValueError, KeyError) as e:
        case.failure = f"no campaign state: {e}"
        return case
    problems = []
    # The campaign itself must reach its end (its summary line; exit 1: it found crashes),
    # not stop on an error of its own (a Python traceback also exits 1).
    if "unique crash(es); report:" not in res.output or res.returncode != (1 if crashes else 0):
        problems.append(f"the campaign did not end normally (exit {res.returncode})")
    if len(crashes) != 1:
        problems.append(f"{len(crashes)} unique crashes, expected 1")
    for c in crashes.values():
        if "runtime error" not in c["signature"] and "AddressSanitizer" not in c["signature"]:
            problems.append(f"unexpected signature {c['signature']!r}")
        if not (c.get("minimized_ops") or 99) <= 10:
            problems.append(f"minimized to {c.get('minimized_ops')} ops, expected <= 10")
        if c["reliability"] != "5/5":
            problems.append(f"replays {c['reliability']}")
        if not (d / "crashes" / c["id"] / "decoded.scn").exists():
            problems.append("no decoded scenario")
    if problems:
        case.failure = "; ".join(problems)
    return case


# What OSS-Fuzz's base-builder sets for a libFuzzer + ASan build (its CFLAGS, without the
# -fsanitize-address-use-after-scope default clang already has).
CFL_CXXFLAGS = "-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize=fuzzer-no-link"


def cfl_step(outdir: Path) -> list:
    """Builds with .clusterfuzzlite/build.sh and runs each target over its seed corpus zip."""
    import shutil
    import zipfile
    out, work = outdir / "cfl-out", outdir / "cfl-work"
    shutil.rmtree(out, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CC="clang-19", CXX="clang++-19", CFLAGS=CFL_CXXFLAGS, CXXFLAGS=CFL_CXXFLAGS,
               LIB_FUZZING_ENGINE="-fsanitize=fuzzer", SRC=str(ROOT), OUT=str(out), WORK=str(work))
    print("== clusterfuzzlite: build.sh ==", flush=True)
    res = btlib.run_streaming(["bash", ROOT / ".clusterfuzzlite/build.sh"], cwd=ROOT, env=env, timeout=30 * 60,
                              log=outdir / "cfl-build.log")
    build = btlib.JUnitCase("clusterfuzzlite", "build.sh", res.seconds, output=res.output[-20000:])
    if res.returncode != 0:
        build.failure = f"build.sh exited {res.returncode}"
        return [build]
    cases = [build]
    for target in FUZZ_RUNS:
        case = btlib.JUnitCase("clusterfuzzlite", target, 0)
        cases.append(case)
        wanted = [target, f"{target}.dict", f"{target}.options", f"{target}_seed_corpus.zip"]
        missing = [w for w in wanted if not (out / w).exists()]
        if missing:
            case.failure = "missing in $OUT: " + ", ".join(missing)
            continue
        seeds = work / f"seeds-{target}"
        shutil.rmtree(seeds, ignore_errors=True)
        with zipfile.ZipFile(out / f"{target}_seed_corpus.zip") as z:
            names = z.namelist()
            z.extractall(seeds)
        run = btlib.run_streaming([out / target, "-runs=0", f"-dict={out / (target + '.dict')}", seeds],
                                  cwd=work, env=dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"),
                                  timeout=600, log=outdir / f"cfl-{target}.log", markers=btlib.REPORT_MARKERS)
        case.seconds, case.output = run.seconds, run.output[-20000:]
        if not names:
            case.failure = "empty seed corpus zip"
        elif run.returncode != 0 or run.first_marker_line:
            case.failure = run.first_marker_line or f"exit status {run.returncode}"
        print(f"   {target}: {len(names)} seed(s), {case.failure or 'ok'}", flush=True)
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(prog="blkcg-torture ci", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fuzz-scale", type=float, default=1.0)
    ap.add_argument("--skip-fuzz", action="store_true")
    ap.add_argument("--presets", default="asan-ubsan,tsan")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    outdir = ROOT / "build/ci"
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    suites, rows, findings = [], [], []
    total_pass = total_fail = 0
    for preset in [p for p in args.presets.split(",") if p]:
        s, passed, failed, note = ctest_step(preset, args.jobs, outdir)
        suites += s
        total_pass += passed
        total_fail += failed
        rows.append(f"| ctest {preset} | {passed} | {failed} | {note} |")
    if not args.skip_fuzz:
        cases, fz = fuzz_step(args.seed, args.fuzz_scale, args.jobs, outdir)
        suites.append(btlib.junit_suite("fuzz", cases))
        fpass = sum(1 for c in cases if c.failure is None)
        ffail = len(cases) - fpass
        total_pass += fpass
        total_fail += ffail
        findings += fz
        rows.append(f"| fuzz (seed {args.seed}) | {fpass} | {ffail} | "
                    f"{', '.join(c.name for c in cases)} |")
        if ffail == 0 or len(cases) > 1:  # the fuzz build exists
            smoke = campaign_smoke(outdir)
            suites.append(btlib.junit_suite("campaign", [smoke]))
            ok = smoke.failure is None
            total_pass += ok
            total_fail += not ok
            rows.append(f"| campaign triage on a planted bug | {int(ok)} | {int(not ok)} | "
                        f"{smoke.failure or 'one crash, minimized, 5/5'} |")
        cfl = cfl_step(outdir)
        suites.append(btlib.junit_suite("clusterfuzzlite", cfl))
        cpass = sum(1 for c in cfl if c.failure is None)
        total_pass += cpass
        total_fail += len(cfl) - cpass
        rows.append(f"| ClusterFuzzLite build.sh and seed zips | {cpass} | {len(cfl) - cpass} | "
                    f"{'; '.join(c.name + ': ' + c.failure for c in cfl if c.failure) or 'every target'} |")
    btlib.write_junit(outdir / "junit.xml", suites)
    wall = time.monotonic() - t0
    md = ["# blkcg-torture ci", "", f"Tree {btlib.tree_id()}, {wall / 60:.1f} min wall.", "",
          "| step | passed | failed | note |", "|---|---|---|---|", *rows, "",
          f"**{total_pass} passed, {total_fail} failed.**", ""]
    if findings:
        md += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
    (outdir / "summary.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"JUnit: {outdir / 'junit.xml'}; summary: {outdir / 'summary.md'}")
    print(f"blkcg-torture ci ({args.presets}{'' if args.skip_fuzz else ' + fuzz'}):")
    print(f"{total_pass} passed, {total_fail} failed")
    return 0 if total_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

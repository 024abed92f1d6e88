#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""blkcg-torture campaign: an overnight fuzzing campaign over every fuzz target.

  campaign.py [--time S] [--jobs N] [--targets LIST] [--engine libfuzzer|afl]
              [--sanitizers LIST] [--dir DIR] [--slice S] [--merge-every S] [--minimize-time S] [--replays N]
              [--no-coverage] [--seed N]

- Runs up to --jobs fuzzer processes at once (default: all cores), cycling through the
  targets in slices of --slice seconds (default 600). libFuzzer instances of one target
  share <dir>/corpus/<target> (the embedded seeds are read, never written); AFL++ instances
  are a main (-M) and secondaries (-S) in one sync directory, <dir>/afl/<target>, which
  afl-fuzz on other machines can sync with too.
- libFuzzer instances alternate between the builds of --sanitizers (default asan,ubsan:
  the fuzz preset, ASan + UBSan, and fuzz-ubsan, UBSan alone, which runs fuzz_ops about
  twice as fast). They share the corpus, so the ASan instances run what the fast ones
  find (-reload); a memory error on an input that adds no coverage is seen only where
  ASan runs. Every crash is triaged with the ASan build, whichever build found it.
  Each requested build must exist before the campaign starts (`blkcg-torture campaign`
  builds them; run directly, a missing one is an error naming the preset to build).
- A crashing, hanging or killed fuzzer process is restarted with the next slice; the
  corpus stays. Every --merge-every seconds (default 1800) a target's corpus is merged
  (libFuzzer -merge=1) in a slot where that target is not running.
- Every 10 s: a status line (execs, exec/s, coverage, corpus size, unique crashes, per
  target) and a row per target in <dir>/stats.csv; report.md and report.html are rewritten
  each minute and at the end.
- Each new crash artifact is triaged: replayed for its signature (report kind + top
  project frames + operation kind), deduplicated, minimized, decoded to a readable
  scenario, replayed --replays times (default 5) for reliability, and written to
  <dir>/crashes/<signature id>/ with the input, the scenarios, the logs and info.json
  (build id, options, seed). Raw artifacts stay in <dir>/raw/<target>/ under content names;
  nothing is overwritten, and a killed campaign resumes with --dir (triage state is in
  <dir>/campaign.json, written atomically after every change).
- At the end (time up, or SIGINT/SIGTERM): final triage, the report, and unless
  --no-coverage the impl/block source coverage of the corpus (coverage preset replay).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import btlib  # noqa: E402
import triage  # noqa: E402

ROOT = btlib.ROOT
ALL_TARGETS = ["fuzz_ops", "fuzz_sched", "fuzz_iomax", "fuzz_scenario"]
# The preset each build comes from ("asan": the fuzz preset, ASan + UBSan), and where its
# fuzz targets are.
PRESETS = {"asan": "fuzz", "ubsan": "fuzz-ubsan", "afl": "afl"}


def fuzz_dir(build: str) -> Path:
    return ROOT / "build" / PRESETS[build] / "fuzz"
ARTIFACT_PREFIXES = ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")


@dataclass
class Instance:
    target: str
    n: int
    proc: subprocess.Popen
    log: Path
    started: float
    deadline: float
    kind: str = "fuzz"          # fuzz | merge
    stopped: bool = False       # interrupted by the campaign's end: its exit status is ours
    logf: object = None
    afl_name: str = ""          # AFL++: the instance's directory in the sync dir


@dataclass
class TargetStats:
    execs_done: int = 0          # from finished instances
    execs_live: dict = field(default_factory=dict)  # instance n -> latest #N
    busy_done: float = 0.0       # seconds fuzzed by finished instances (summed per instance)
    cov: int = 0
    ft: int = 0
    instances: int = 0
    restarts_after_crash: int = 0
    hangs_killed: int = 0
    last_merge: float = 0.0
    quick_crashes: int = 0       # consecutive instances that died within 10 s
    hold_until: float = 0.0      # no restart before this (campaign seconds)


class Campaign:
    def __init__(self, args):
        self.args = args
        self.dir = Path(args.dir).resolve() if args.dir else \
            ROOT / "build/campaign" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("corpus", "raw", "crashes", "logs", "afl"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.state_path = self.dir / "campaign.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else \
            {"triaged": {}, "crashes": {}, "runs": []}
        self.state["runs"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "args": vars(args), "tree": btlib.tree_id()})
        self.save_state()
        self.targets = args.targets.split(",")
        self.recover_merges()
        self.stats = {t: TargetStats() for t in self.targets}
        self.running: list = []
        self.next_target = 0
        self.counter = 0
        self.stop = False
        self.t0 = time.monotonic()
        self.rng = random.Random(args.seed)
        self.fuzz_dir = fuzz_dir("afl" if args.engine == "afl" else "asan")
        self.sanitizers = args.sanitizers.split(",")
        self.tool = ROOT / "build/asan-ubsan/tools/scenario_tool"
        self.timeline: list = []   # (seconds, target, execs, cov, corpus, crashes)

    # -- state -------------------------------------------------------------------------------
    def save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str) + "\n")
        tmp.replace(self.state_path)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # -- instances ---------------------------------------------------------------------------
    def start(self, target: str) -> None:
        self.counter += 1
        n = self.counter
        seed = self.rng.randrange(1, 2**31)
        log = self.dir / "logs" / f"{target}-{n:05d}.log"
        corpus = self.dir / "corpus" / target
        corpus.mkdir(exist_ok=True)
        raw = self.dir / "raw" / target
        raw.mkdir(exist_ok=True)
        left = self.args.time - self.elapsed() if self.args.time > 0 else self.args.slice
        budget = int(max(10, min(self.args.slice, left)))
        env = triage.fuzz_env()
        env.pop("BLKCG_TRACE_OPS")  # only triage replays trace operations
        if self.args.engine == "afl":
            sync = self.dir / "afl" / target
            role = ["-M", "main"] if not any(i.target == target and i.kind == "fuzz" for i in self.running) \
                else ["-S", f"s{n}"]
            # afl-fuzz insists on symbolize=0 (it symbolizes nothing itself); the afl
            # build has no sanitizer, so the oracle's aborts are what it catches.
            env.update(AFL_NO_UI="1", AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1",
                       AFL_AUTORESUME="1", ASAN_OPTIONS="abort_on_error=1:symbolize=0",
                       UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:symbolize=0")
            cmd = ["afl-fuzz", *role, "-i", str(ROOT / "corpus" / target), "-o", str(sync),
                   "-V", str(budget), "-x", str(ROOT / "fuzz" / f"{target}.dict"), "--",
                   str(self.fuzz_dir / target)]
        else:
            # Alternating per target: with two instances of a target, one of each build.
            san = self.sanitizers[self.stats[target].instances % len(self.sanitizers)]
            log = log.with_name(f"{target}-{n:05d}-{san}.log")
            cmd = [str(fuzz_dir(san) / target), str(corpus), str(ROOT / "corpus" / target),
                   f"-max_total_time={budget}", f"-seed={seed}", f"-dict={ROOT / 'fuzz' / (target + '.dict')}",
                   btlib.LEN_CONTROL, f"-artifact_prefix={raw}/", "-print_final_stats=1", "-timeout=25",
                   "-rss_limit_mb=4096", "-reload=30"]
        logf = open(log, "w")
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=self.dir,
                                start_new_session=True)
        self.running.append(Instance(target, n, proc, log, time.monotonic(), time.monotonic() + budget + 90,
                                     logf=logf, afl_name=role[1] if self.args.engine == "afl" else ""))
        self.stats[target].instances += 1

    def start_merge(self, target: str) -> None:
        self.counter += 1
        corpus = self.dir / "corpus" / target
        merged = self.dir / "corpus" / f".{target}.merging"
        if merged.exists():
            shutil.rmtree(merged)
        merged.mkdir()
        log = self.dir / "logs" / f"{target}-{self.counter:05d}-merge.log"
        env = triage.fuzz_env()
        env.pop("BLKCG_TRACE_OPS")
        cmd = [str(fuzz_dir("asan") / target), "-merge=1", str(merged), str(corpus)]
        logf = open(log, "w")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.running.append(Instance(target, self.counter, proc, log, time.monotonic(),
                                     time.monotonic() + 1800, kind="merge", logf=logf))

    def recover_merges(self) -> None:
        """A campaign killed inside finish_merge's renames: put the corpus back."""
        for t in self.targets:
            corpus = self.dir / "corpus" / t
            old = self.dir / "corpus" / f".{t}.old"
            merged = self.dir / "corpus" / f".{t}.merging"
            if old.exists() and not corpus.exists():
                old.rename(corpus)  # killed between the two renames: the old corpus is whole
            elif old.exists():
                shutil.rmtree(old)  # killed after them: the merged corpus is in place
            if merged.exists():
                shutil.rmtree(merged)  # an unfinished merge output; its inputs are in corpus

    def finish_merge(self, inst: Instance) -> None:
        corpus = self.dir / "corpus" / inst.target
        merged = self.dir / "corpus" / f".{inst.target}.merging"
        if inst.proc.returncode == 0 and any(merged.iterdir()):
            old = self.dir / "corpus" / f".{inst.target}.old"
            if old.exists():
                shutil.rmtree(old)
            corpus.rename(old)
            merged.rename(corpus)
            shutil.rmtree(old)
        elif merged.exists():
            shutil.rmtree(merged)
        self.stats[inst.target].last_merge = self.elapsed()

    def pick_target(self) -> tuple[str, str]:
        """The next (target, kind) for a free slot: a due merge first, else round robin."""
        busy = {i.target for i in self.running}
        ready = [t for t in self.targets if self.stats[t].hold_until <= self.elapsed()]
        if not ready:
            return "", "wait"
        if self.args.engine == "libfuzzer":
            for t in self.targets:
                st = self.stats[t]
                corpus = self.dir / "corpus" / t  # made by the target's first instance
                if t not in busy and self.elapsed() - st.last_merge >= self.args.merge_every and \
                        corpus.is_dir() and any(corpus.iterdir()):
                    return t, "merge"
        while True:
            t = self.targets[self.next_target % len(self.targets)]
            self.next_target += 1
            if t in ready:
                return t, "fuzz"

    def reap(self) -> None:
        now = time.monotonic()
        for inst in list(self.running):
            if inst.proc.poll() is None and now > inst.deadline:
                os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait()
                self.stats[inst.target].hangs_killed += 1
            if inst.proc.poll() is None:
                continue
            self.running.remove(inst)
            inst.logf.close()
            if inst.kind == "merge":
                self.finish_merge(inst)
                continue
            text = inst.log.read_text(errors="replace")
            st = self.stats[inst.target]
            fin = btlib.libfuzzer_stats(text)
            live = st.execs_live.pop(inst.n, 0)
            st.execs_done += int(fin.get("number_of_executed_units", live) or live)
            st.busy_done += now - inst.started
            if inst.proc.returncode not in (0, None) and not inst.stopped:
                st.restarts_after_crash += 1
                # A target that dies at once (a crash in its seeds, a bug hit by every
                # input) backs off exponentially instead of spinning: 2, 4, ... 64 s.
                if now - inst.started < 10:
                    st.quick_crashes += 1
                    st.hold_until = self.elapsed() + min(64, 2 ** st.quick_crashes)
                else:
                    st.quick_crashes = 0
            else:
                st.quick_crashes = 0

    def poll_live(self) -> None:
        for inst in self.running:
            if inst.kind != "fuzz":
                continue
            st = self.stats[inst.target]
            try:
                with open(inst.log, "rb") as f:
                    f.seek(max(0, inst.log.stat().st_size - 8192))
                    tail = f.read().decode(errors="replace")
            except OSError:
                continue
            lines = re.findall(r"^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+)", tail, re.M)
            if lines:
                n, cov, ft = (int(x) for x in lines[-1])
                st.execs_live[inst.n] = n
                st.cov, st.ft = max(st.cov, cov), max(st.ft, ft)
            if inst.afl_name:  # AFL++ keeps its numbers in <sync>/<name>/fuzzer_stats
                stats = self.dir / "afl" / inst.target / inst.afl_name / "fuzzer_stats"
                try:
                    kv = dict(re.findall(r"^(\w+)\s*:\s*(\S+)", stats.read_text(), re.M))
                except OSError:
                    kv = {}
                if "execs_done" in kv:
                    st.execs_live[inst.n] = int(kv["execs_done"])
                if "edges_found" in kv:
                    st.cov = max(st.cov, int(kv["edges_found"]))

    # -- triage ------------------------------------------------------------------------------
    def new_artifacts(self) -> list:
        found = []
        for t in self.targets:
            raw = self.dir / "raw" / t
            cands = [p for p in raw.glob("*") if p.name.startswith(ARTIFACT_PREFIXES)] if raw.exists() else []
            if self.args.engine == "afl":
                for d in (self.dir / "afl" / t).glob("*/crashes"):
                    cands += [p for p in d.iterdir() if p.name.startswith("id:")]
            for p in cands:
                h = hashlib.sha1(p.read_bytes()).hexdigest()
                if h not in self.state["triaged"]:
                    found.append((t, p, h))
        return found

    def triage_one(self, target: str, path: Path, h: str) -> None:
        fuzz_bin = fuzz_dir("asan") / target  # replays use the libFuzzer build
        r = triage.replay(fuzz_bin, target, path)
        entry = {"target": target, "raw": str(path.relative_to(self.dir)), "at": round(self.elapsed()),
                 "reproduced": r.crashed}
        if not r.crashed:
            entry["signature"] = None
            self.state["triaged"][h] = entry
            self.save_state()
            return
        sig = triage.signature(r.kind, r.frames, r.op)
        sid = triage.sig_id(sig)
        entry["signature"] = sig
        crashes = self.state["crashes"]
        if sid in crashes:
            crashes[sid]["duplicates"] += 1
            self.state["triaged"][h] = entry
            self.save_state()
            return
        cdir = self.dir / "crashes" / sid
        cdir.mkdir(exist_ok=False)
        shutil.copyfile(path, cdir / ("input" + (".bin" if target in triage.SCENARIO_TARGETS else "")))
        (cdir / "replay.log").write_text(r.output)
        wrote = triage.minimize_and_decode(target, cdir / (
            "input" + (".bin" if target in triage.SCENARIO_TARGETS else "")), cdir, self.tool, fuzz_bin,
            self.args.minimize_time)
        ok = 0
        for _ in range(self.args.replays):
            ok += triage.replay(fuzz_bin, target, path).crashed
        info = {"signature": sig, "id": sid, "target": target, "kind": r.kind, "frames": r.frames,
                "op": r.op, "first_seen_s": round(self.elapsed()), "raw": str(path.relative_to(self.dir)),
                "found_by": self.finder(path),
                "reliability": f"{ok}/{self.args.replays}", "duplicates": 0, "build": self.build_id(target),
                "engine": self.args.engine, "options": vars(self.args), **wrote}
        (cdir / "info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
        inp = "input.bin" if target in triage.SCENARIO_TARGETS else "input"
        repro = [f"# {sig}", "", "Reproduce (from the project root):", "",
                 f"    build/fuzz/fuzz/{target} {cdir.relative_to(ROOT) if cdir.is_relative_to(ROOT) else cdir}/{inp}"]
        if "minimized" in wrote and wrote["minimized"].endswith(".scn"):
            repro += ["", "Readable, minimized:", "",
                      f"    tools/blkcg-torture replay {cdir}/minimized.scn", "",
                      *["    " + l for l in (cdir / "minimized.scn").read_text().splitlines()]]
        if "does not reproduce" in wrote.get("minimize_message", ""):
            repro += ["", "WARNING: " + wrote["minimize_message"] + " (a decoder or minimizer bug:"
                      " report it with input.bin)."]
        (cdir / "README.md").write_text("\n".join(repro) + "\n")
        crashes[sid] = info
        self.state["triaged"][h] = entry
        self.save_state()
        print(f"!!! new crash {sid}: {sig} ({target}, reliability {info['reliability']}"
              f"{', ' + str(wrote.get('minimized_ops')) + ' ops' if wrote.get('minimized_ops') else ''})",
              flush=True)

    def finder(self, artifact: Path) -> dict:
        """The fuzzer log that wrote an artifact, with its command line and seed."""
        for log in sorted((self.dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            if artifact.name in text:
                seed = re.search(r"Seed: (\d+)", text)
                cmd = text.splitlines()[0][2:] if text.startswith("$ ") else ""
                return {"log": str(log.relative_to(self.dir)), "seed": seed.group(1) if seed else None,
                        "command": cmd}
        return {}

    def build_id(self, target: str) -> str:
        b = self.fuzz_dir / target
        digest = hashlib.sha1(b.read_bytes()).hexdigest()[:12] if b.exists() else "?"
        return f"{self.state['runs'][-1]['tree']} {target}:{digest}"

    # -- status and report -------------------------------------------------------------------
    def corpus_size(self, t: str) -> int:
        d = self.dir / "corpus" / t
        n = sum(1 for _ in d.iterdir()) if d.exists() else 0
        if self.args.engine == "afl":
            n += sum(1 for q in (self.dir / "afl" / t).glob("*/queue/id:*"))
        return n

    def exec_rate(self, t: str) -> float:
        """Executions per second of fuzzing (per instance): not diluted by the time a target
        waited for a core, merged, or was held back after crashes."""
        st = self.stats[t]
        now = time.monotonic()
        busy = st.busy_done + sum(now - i.started for i in self.running
                                  if i.target == t and i.kind == "fuzz")
        return (st.execs_done + sum(st.execs_live.values())) / max(busy, 1.0)

    def status(self) -> None:
        el = self.elapsed()
        parts = []
        with open(self.dir / "stats.csv", "a") as f:
            if f.tell() == 0:
                f.write("seconds,target,execs,cov,ft,corpus,unique_crashes\n")
            for t in self.targets:
                st = self.stats[t]
                execs = st.execs_done + sum(st.execs_live.values())
                ncrash = sum(1 for c in self.state["crashes"].values() if c["target"] == t)
                corp = self.corpus_size(t)
                f.write(f"{el:.0f},{t},{execs},{st.cov},{st.ft},{corp},{ncrash}\n")
                self.timeline.append((el, t, execs, st.cov, corp, ncrash))
                parts.append(f"{t}: {execs} ex ({self.exec_rate(t):.0f}/s) cov {st.cov} corp {corp} crash {ncrash}")
        print(f"[{el / 60:6.1f} min] {len(self.running)} running | " + " | ".join(parts), flush=True)

    def report(self, coverage: str = "") -> None:
        crashes = sorted(self.state["crashes"].values(), key=lambda c: c["first_seen_s"])
        md = [f"# blkcg-torture campaign {self.dir.name}", "",
              f"Engine {self.args.engine}, {self.args.jobs} job(s), targets {', '.join(self.targets)}, "
              f"{self.elapsed() / 60:.1f} min, tree {self.state['runs'][-1]['tree']}.", "",
              "## Targets", "", "exec/s: per second of fuzzing of one instance.", "",
              "| target | execs | exec/s | coverage (cov) | features | corpus | instances | "
              "crashed/killed | unique crashes |", "|---|---|---|---|---|---|---|---|---|"]
        for t in self.targets:
            st = self.stats[t]
            execs = st.execs_done + sum(st.execs_live.values())
            nc = sum(1 for c in crashes if c["target"] == t)
            md.append(f"| {t} | {execs} | {self.exec_rate(t):.0f} | {st.cov} | {st.ft} | "
                      f"{self.corpus_size(t)} | {st.instances} | {st.restarts_after_crash}/{st.hangs_killed} | {nc} |")
        md += ["", f"## Crashes ({len(crashes)} unique, "
               f"{sum(c['duplicates'] for c in crashes)} duplicates)", ""]
        for c in crashes:
            md += [f"### {c['id']}: {c['signature']}", "",
                   f"- target {c['target']}, first seen at {c['first_seen_s']} s, replays {c['reliability']}, "
                   f"{c['duplicates']} duplicate(s); build {c['build']}",
            ]
            cdir = self.dir / "crashes" / c["id"]
            files = sorted(p.name for p in cdir.iterdir()) if cdir.is_dir() else []
            md.append(f"- files: crashes/{c['id']}/ ({', '.join(files)})" +
                      ("" if "minimized.scn" in files else "; no minimized.scn (the campaign ended first, or "
                       "the minimizer failed; see the log): `tools/blkcg-torture minimize "
                       f"crashes/{c['id']}/input.bin --target {c['target']}`"))
            mp = cdir / "minimized.scn"
            if mp.exists():
                md += ["", "```", mp.read_text().rstrip(), "```"]
            md.append("")
        if coverage:
            md += ["## Source coverage of impl/block (corpus replayed in the coverage build)", "", "```",
                   coverage.rstrip(), "```", ""]
        md += ["## Coverage over time", "", "stats.csv; the plot is in report.html.", ""]
        (self.dir / "report.md").write_text("\n".join(md))
        self.write_html(md)

    def write_html(self, md: list) -> None:
        svg = svg_plot(self.timeline, self.targets)
        body = html.escape("\n".join(md))
        page = ("<!doctype html><meta charset='utf-8'><title>blkcg-torture campaign</title>"
                "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
                "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}</style>"
                f"<h1>Campaign {html.escape(self.dir.name)}</h1><h2>Coverage (cov) over time</h2>{svg}"
                f"<h2>Report</h2><pre>{body}</pre>")
        tmp = self.dir / "report.html.tmp"
        tmp.write_text(page)
        tmp.replace(self.dir / "report.html")

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        def on_signal(signum, frame):
            self.stop = True
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        last_status = last_report = -1e9
        while not self.stop and (self.args.time <= 0 or self.elapsed() < self.args.time):
            self.reap()
            while len(self.running) < self.args.jobs and not self.stop and \
                    (self.args.time <= 0 or self.args.time - self.elapsed() > 5):
                t, kind = self.pick_target()
                if kind == "wait":
                    break
                self.start_merge(t) if kind == "merge" else self.start(t)
            for t, p, h in self.new_artifacts():
                self.triage_one(t, p, h)
            self.poll_live()
            if self.elapsed() - last_status >= 10:
                self.status()
                last_status = self.elapsed()
            if self.elapsed() - last_report >= 60:
                self.report()
                last_report = self.elapsed()
            time.sleep(1)
        for inst in self.running:
            if inst.proc.poll() is None:
                inst.stopped = True
                os.killpg(inst.proc.pid, signal.SIGINT)   # libFuzzer prints its final stats
        deadline = time.monotonic() + 15
        while any(i.proc.poll() is None for i in self.running) and time.monotonic() < deadline:
            time.sleep(0.2)
        for inst in self.running:
            if inst.proc.poll() is None:
                os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait()
        self.reap()
        for t, p, h in self.new_artifacts():
            self.triage_one(t, p, h)
        self.status()
        cov = "" if self.args.no_coverage else self.coverage()
        self.report(cov)
        n = len(self.state["crashes"])
        print(f"campaign: {n} unique crash(es); report: {self.dir / 'report.md'} and report.html")
        return 1 if n else 0

    def coverage(self) -> str:
        """impl/block coverage of the campaign's corpora (and seeds), coverage preset replay.
        The report is restricted to impl/block, so its TOTAL row is impl/block's (it was
        the whole of impl/ once, kern and the oracle included, under impl/block's rows)."""
        err = btlib.build(ROOT, "coverage", [f"{t}_replay" for t in self.targets],
                          self.dir / "logs" / "build-coverage.log", os.cpu_count() or 2)
        if err:
            return err
        profs = []
        for t in self.targets:
            prof = self.dir / "logs" / f"{t}.profraw"
            prof.unlink(missing_ok=True)
            subprocess.run([str(ROOT / "build/coverage/fuzz" / f"{t}_replay"), str(self.dir / "corpus" / t),
                            str(ROOT / "corpus" / t)], env=dict(os.environ, LLVM_PROFILE_FILE=str(prof)),
                           capture_output=True)
            if prof.exists():
                profs.append(prof)
        if not profs:
            return "no profile written"
        data = self.dir / "logs" / "campaign.profdata"
        subprocess.run(["llvm-profdata-19", "merge", "-sparse", *map(str, profs), "-o", str(data)], check=True)
        objs = []
        for t in self.targets[1:]:
            objs += ["-object", str(ROOT / "build/coverage/fuzz" / f"{t}_replay")]
        r = subprocess.run(["llvm-cov-19", "report", str(ROOT / "build/coverage/fuzz" / f"{self.targets[0]}_replay"),
                            *objs, f"-instr-profile={data}", str(ROOT / "impl" / "block")],
                           capture_output=True, text=True)
        return r.stdout.strip()


def svg_plot(timeline: list, targets: list) -> str:
    """Coverage (libFuzzer cov) per target over time as an inline SVG line chart."""
    w, h, pad = 720, 300, 45
    if not timeline:
        return "<p>(no samples yet)</p>"
    tmax = max(1.0, max(p[0] for p in timeline))
    cmax = max(1, max(p[3] for p in timeline))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' style='border:1px solid #ccc'>",
           f"<text x='{pad}' y='15' font-size='12'>cov (max {cmax}) vs time (max {tmax / 60:.1f} min)</text>",
           f"<line x1='{pad}' y1='{h - pad}' x2='{w - 10}' y2='{h - pad}' stroke='black'/>",
           f"<line x1='{pad}' y1='{h - pad}' x2='{pad}' y2='20' stroke='black'/>"]
    for i, t in enumerate(targets):
        pts = [(p[0], p[3]) for p in timeline if p[1] == t]
        if not pts:
            continue
        xy = " ".join(f"{pad + (x / tmax) * (w - pad - 10):.1f},{h - pad - (y / cmax) * (h - pad - 20):.1f}"
                      for x, y in pts)
        c = colours[i % len(colours)]
        out.append(f"<polyline fill='none' stroke='{c}' stroke-width='2' points='{xy}'/>")
        out.append(f"<text x='{w - 150}' y='{35 + 15 * i}' font-size='12' fill='{c}'>{html.escape(t)}</text>")
    out.append("</svg>")
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(prog="blkcg-torture campaign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=float, default=8 * 3600, help="seconds; 0 = until interrupted")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--targets", default=",".join(ALL_TARGETS))
    ap.add_argument("--engine", choices=("libfuzzer", "afl"), default="libfuzzer")
    ap.add_argument("--sanitizers", default="asan,ubsan",
                    help="libFuzzer builds the instances alternate between: asan (fuzz preset), "
                         "ubsan (fuzz-ubsan preset)")
    ap.add_argument("--dir")
    ap.add_argument("--slice", type=float, default=600)
    ap.add_argument("--merge-every", type=float, default=1800)
    ap.add_argument("--minimize-time", type=float, default=60)
    ap.add_argument("--replays", type=int, default=5)
    ap.add_argument("--no-coverage", action="store_true")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    for t in args.targets.split(","):
        if t not in ALL_TARGETS:
            print(f"campaign: unknown target {t!r} (known: {', '.join(ALL_TARGETS)})", file=sys.stderr)
            return 2
    for san in args.sanitizers.split(","):
        if san not in ("asan", "ubsan"):
            print(f"campaign: unknown sanitizer build {san!r} (known: asan, ubsan)", file=sys.stderr)
            return 2
    # Every binary a slot may start must exist before the first one runs: a missing build
    # found at the first restart would stop the campaign mid-way.
    for build in ["afl"] if args.engine == "afl" else args.sanitizers.split(","):
        missing = [t for t in args.targets.split(",") if not (fuzz_dir(build) / t).is_file()]
        if missing:
            preset = PRESETS[build]
            print(f"campaign: {fuzz_dir(build) / missing[0]} is not built (cmake --preset {preset} && "
                  f"cmake --build --preset {preset}; `blkcg-torture campaign` builds it), or "
                  f"leave {build} out of --sanitizers", file=sys.stderr)
            return 2
    return Campaign(args).run()


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: MIT
"""Shared helpers of the blkcg-torture tools (bugbench, ci, campaign): the source tree,
builds, running a program with its output streamed to a log while watching for the first
report, the minimizer, and JUnit XML."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent

# libFuzzer's default length control, passed to every target explicitly: libFuzzer turns
# it off for a target with a custom mutator (fuzz_sched's schedule mutation), whose inputs
# then grow to max_len at once and run three times slower.
LEN_CONTROL = "-len_control=100"

# The first line of any report the suite's checkers or the sanitizers print. The impl's
# report sink prints "!!!" lines in count mode and the report header in abort mode.
REPORT_MARKERS = (
    "!!!",
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "ThreadSanitizer: reported",
    "runtime error:",
    "==ERROR: libFuzzer",
    "ERROR: libFuzzer",
    "deadly signal",
    "==== blkcg-torture report:",
)


def source_files() -> list:
    """The tree's files, committed or not, minus what .gitignore excludes (build/ ...)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def tree_id() -> str:
    """HEAD's short hash, with "+dirty" when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build(tree: Path, preset: str, targets, log: Path, jobs: int) -> str:
    """Configures and builds a preset in tree; returns '' or an error naming the log."""
    with open(log, "a") as f:
        for cmd in (["cmake", "--preset", preset],
                    ["cmake", "--build", "--preset", preset, "-j", str(jobs)] +
                    (["--target", *targets] if targets else [])):
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            rc = subprocess.run(cmd, cwd=tree, stdout=f, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                return f"build failed ({preset}), see {log}"
    return ""


@dataclass
class StreamResult:
    returncode: int | None
    seconds: float
    output: str
    timed_out: bool
    killed_by_us: bool
    first_marker_seconds: float | None
    first_marker_line: str | None


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_streaming(cmd, cwd, env, timeout: float, log: Path, markers=(),
                  stop_after_marker: float | None = None, echo: bool = False) -> StreamResult:
    """Runs cmd in its own process group, copying its output to log as it comes. Records
    when the first line containing a marker appeared; kills the group at the timeout, or
    stop_after_marker seconds after the first marker (the rest of the report still lands
    in the log). echo also copies the output to stdout."""
    start = time.monotonic()
    state = {"t": None, "line": None}
    chunks: list = []
    with open(log, "w") as f:
        f.write(f"$ {' '.join(str(c) for c in cmd)}\n")
        f.flush()
        p = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)

        def reader():
            for raw in p.stdout:
                line = raw.decode(errors="replace")
                chunks.append(line)
                f.write(line)
                f.flush()
                if echo:
                    print(line, end="", flush=True)
                if state["t"] is None and any(m in line for m in markers):
                    state["t"] = time.monotonic() - start
                    state["line"] = line.strip()[:300]

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        timed_out = killed = False
        while True:
            try:
                p.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic() - start
            if now > timeout:
                timed_out = killed = True
                _kill_group(p)
            elif stop_after_marker is not None and state["t"] is not None and \
                    now > state["t"] + stop_after_marker:
                killed = True
                _kill_group(p)
        th.join(timeout=10)
        p.stdout.close()
    return StreamResult(returncode=None if killed else p.returncode,
                        seconds=time.monotonic() - start, output="".join(chunks),
                        timed_out=timed_out, killed_by_us=killed,
                        first_marker_seconds=state["t"], first_marker_line=state["line"])


def libfuzzer_stats(output: str) -> dict:
    """libFuzzer's -print_final_stats=1 lines ("stat::name: value") as a dict."""
    return dict(re.findall(r"^stat::(\w+):\s*(\S+)", output, re.M))


@dataclass
class Minimized:
    ops: int | None
    preempts: int | None
    signature: str
    seconds: float | None
    message: str


def minimize(tool: Path, crash: Path, out: Path, seconds: float, cwd: Path,
             against: Path | None = None) -> Minimized:
    """Runs the scenario tool's delta debugger on a crash; parses its summary line. Bugs
    planted through BLKCG_BUSTED (as the fuzzers read it) are planted in the minimizer too.
    against: a reference tree's scenario tool; the scenario is then minimized while its
    run differs from that tool's (differential: for a failing expectation)."""
    env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    planted = [f"--busted={f}" for f in os.environ.get("BLKCG_BUSTED", "").split(",") if f]
    ref = [f"--against={against}"] if against is not None else []
    p = subprocess.run([str(tool), "minimize", *planted, *ref, f"--time={int(seconds)}", str(crash), str(out)],
                       cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=seconds * 4 + 120)
    text = p.stdout + p.stderr
    m = re.search(r"minimized to (\d+) ops, (\d+) preemption\(s\) in ([\d.]+) s; signature: (.*)", text)
    if not m:
        last = text.strip().splitlines()[-1] if text.strip() else ""
        return Minimized(None, None, "", None, last)
    return Minimized(int(m.group(1)), int(m.group(2)), m.group(4).strip(), float(m.group(3)), m.group(0))


# ---------------------------------------------------------------------------------------------
# JUnit XML (the schema Jenkins, GitLab and GitHub reporters read).

@dataclass
class JUnitCase:
    classname: str
    name: str
    seconds: float
    failure: str | None = None     # message; None = passed
    skipped: str | None = None
    output: str = ""


def junit_suite(name: str, cases: list) -> str:
    fails = sum(1 for c in cases if c.failure is not None)
    skips = sum(1 for c in cases if c.skipped is not None)
    total = sum(c.seconds for c in cases)
    parts = [f'  <testsuite name={quoteattr(name)} tests="{len(cases)}" failures="{fails}" '
             f'errors="0" skipped="{skips}" time="{total:.3f}">']
    for c in cases:
        parts.append(f'    <testcase classname={quoteattr(c.classname)} name={quoteattr(c.name)} '
                     f'time="{c.seconds:.3f}">')
        if c.failure is not None:
            parts.append(f'      <failure message={quoteattr(c.failure[:500])}>'
                         f'{escape(c.output[-20000:])}</failure>')
        elif c.skipped is not None:
            parts.append(f'      <skipped message={quoteattr(c.skipped[:500])}/>')
        parts.append("    </testcase>")
    parts.append("  </testsuite>")
    return "\n".join(parts)


def write_junit(path: Path, suites: list) -> None:
    body = "\n".join(suites)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n{body}\n</testsuites>\n')
    tmp.replace(path)

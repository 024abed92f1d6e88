# SPDX-License-Identifier: MIT
"""Crash triage for campaigns: replay a crashing input, compute its signature (report kind
+ top project frames + the operation it happened in), minimize and decode it, and measure
how reliably it replays. Used by tools/campaign.py; no state of its own."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import btlib

ROOT = btlib.ROOT
SCENARIO_TARGETS = ("fuzz_ops", "fuzz_sched")  # inputs are binary scenarios


@dataclass
class Replay:
    crashed: bool
    kind: str          # report kind or sanitizer error type
    frames: list       # top project frames (function names), innermost first
    op: str            # the operation kind the crash happened in ("" if unknown)
    output: str


def fuzz_env() -> dict:
    return dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:symbolize=1",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", BLKCG_TRACE_OPS="1")


def parse_crash(output: str) -> tuple[str, list, str]:
    """(kind, frames, op) of the first report in a crash's output."""
    kind = ""
    m = re.search(r"==== blkcg-torture report: (\S+) ====\s*\n(?:!!! )?signature: (.*)", output)
    if m:
        kind = f"{m.group(1)} {m.group(2).strip()}"
    else:
        for pat in (r"ERROR: (AddressSanitizer: [\w-]+)", r"(ThreadSanitizer: [\w ]+?) \(",
                    r"ERROR: (LeakSanitizer): detected", r"(runtime error): ",
                    r"ERROR: libFuzzer: ([\w-]+)", r"(deadly signal)"):
            m = re.search(pat, output)
            if m:
                kind = m.group(1)
                break
    start = m.start() if m else 0
    frames = []
    for fm in re.finditer(r"^\s*#\d+ 0x[0-9a-f]+ in (.*) (\S+)$", output[start:], re.M):
        func, where = function_name(fm.group(1)), fm.group(2)
        if "/impl/" in where and "/impl/kern/report" not in where and (not frames or frames[-1] != func):
            frames.append(func)
        if len(frames) == 3:
            break
    if not frames:  # a UBSan "file:line: runtime error" names its place on the line itself
        um = re.search(r"(\S+/impl/\S+?):\d+:\d+: runtime error", output)
        if um:
            frames.append(Path(um.group(1)).name)
    op = ""
    before = output[:start] if m else output
    # The task the report happened in: a report's context line or, after a sanitizer's,
    # the executor's "crashed in task:" line ("T4(T7/cpu2) ..." names scenario task T7).
    # Its own last operation is the one in progress; without a scenario task (a sequential
    # run, the prologue of a concurrent one), the last operation started.
    tm = re.search(r"^\s*(?:context|crashed in task): \S+?\((T\d+)/", output[start:], re.M)
    ops = re.findall(r"^op (?:\d+|end): (?:(T\d+): )?(\S+)", before, re.M)
    if tm:
        mine = [kind_ for tag, kind_ in ops if tag == tm.group(1)]
        ops = [("", mine[-1])] if mine else ops
    if ops:
        op = ops[-1][1]
    return kind or "unknown", frames, op


def function_name(demangled: str) -> str:
    """A demangled frame as a stable name: template arguments and parameter lists dropped,
    the return type too ("void ns::f<T>(int)::$_0::operator()(x) const" -> "ns::f::$_0::operator")."""
    out, depth = [], 0
    for ch in demangled:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    words = "".join(out).split()
    words = [w for w in words if w not in ("const", "volatile", "&", "&&")]
    return words[-1] if words else demangled


def signature(kind: str, frames: list, op: str) -> str:
    return " | ".join([kind, " < ".join(frames) or "-", op or "-"])


def sig_id(sig: str) -> str:
    return hashlib.sha1(sig.encode()).hexdigest()[:12]


def replay(fuzz_bin: Path, target: str, crash: Path, timeout: float = 120) -> Replay:
    try:
        p = subprocess.run([str(fuzz_bin), str(crash)], env=fuzz_env(), capture_output=True,
                           text=True, errors="replace", timeout=timeout)
        out, crashed = p.stdout + p.stderr, p.returncode != 0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\n(timeout)\n"
        crashed = True
    kind, frames, op = parse_crash(out)
    if crashed and kind == "unknown" and "(timeout)" in out:
        kind = "timeout"
    return Replay(crashed, kind, frames, op, out)


@dataclass
class Triaged:
    sig: str
    sid: str
    dir: Path
    files: dict = field(default_factory=dict)
    reliability: str = ""
    repro_ops: int | None = None


def minimize_and_decode(target: str, crash: Path, outdir: Path, tool: Path, fuzz_bin: Path,
                        seconds: float) -> dict:
    """Writes decoded.scn / minimized.scn (scenario targets, via the scenario tool) or
    minimized.bin (the others, libFuzzer's -minimize_crash). Returns what it wrote."""
    wrote: dict = {}
    if target in SCENARIO_TARGETS and tool.exists():
        dec = subprocess.run([str(tool), "decode", str(crash)], capture_output=True, text=True)
        if dec.returncode == 0:
            (outdir / "decoded.scn").write_text(dec.stdout)
            wrote["decoded"] = "decoded.scn"
        m = btlib.minimize(tool, crash, outdir / "minimized.scn", seconds, cwd=ROOT)
        if (outdir / "minimized.scn").exists():
            wrote["minimized"] = "minimized.scn"
            wrote["minimized_ops"] = m.ops
            wrote["minimized_preempts"] = m.preempts
        wrote["minimize_message"] = m.message
    else:
        out = outdir / "minimized.bin"
        subprocess.run([str(fuzz_bin), str(crash), "-minimize_crash=1", f"-max_total_time={int(seconds)}",
                        f"-exact_artifact_path={out}"], env=fuzz_env(), capture_output=True,
                       timeout=seconds * 3 + 60)
        if out.exists():
            wrote["minimized"] = "minimized.bin"
            wrote["minimized_bytes"] = out.stat().st_size
    return wrote

"""CLI start-up: ``broker-jobs`` commands against ``dramatiq --help``, N runs each, interleaved, medians compared.

Targets (issue 14): ``broker-jobs --help`` within 2.5x ``dramatiq --help``; ``send``, ``history`` and ``jobs list``
within 5x.  ``send diagnostics`` publishes for real (to ``RABBITMQ_URL``); ``history`` reads ``DATABASE_URL``.

    python benchmarks/cli_startup.py --runs 10          # a table on stdout
    python benchmarks/cli_startup.py --runs 3 --json    # one JSON object (what benchmarks/run.py and the test read)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

#: (label, command, target ratio to ``dramatiq --help``); the first is the reference.
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("dramatiq --help", ["dramatiq", "--help"], None),
    ("broker-jobs --help", ["broker-jobs", "--help"], 2.5),
    ("broker-jobs jobs list", ["broker-jobs", "jobs", "list"], 5.0),
    ("broker-jobs history --limit 1", ["broker-jobs", "history", "--limit", "1"], 5.0),
    ("broker-jobs send diagnostics", ["broker-jobs", "send", "diagnostics"], 5.0),
]


@dataclass
class Row:
    """One command's runs."""

    command: str
    runs: int
    median_ms: float
    min_ms: float
    ratio: float | None
    target: float | None
    failures: int
    error: str | None = None


def _executable(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def compile_package() -> None:
    """Write the package's bytecode, as ``pip install`` does for an installed copy.

    Dramatiq's bytecode was compiled when pip installed it; an editable checkout's is written on first use, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (as on CI machines), in which case every run would compile all of
    broker_jobs from source and the comparison would measure the compiler, not the start-up.
    """
    package = Path(__file__).resolve().parent.parent / "broker_jobs"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})


def measure(runs: int, env: dict[str, str] | None = None) -> list[Row]:
    """Run every command ``runs`` times, interleaved (a busy second hits them all), and compare medians."""
    compile_package()
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    failures: dict[str, int] = dict.fromkeys(times, 0)
    errors: dict[str, str | None] = dict.fromkeys(times)
    for _ in range(runs):
        for label, command, _ in COMMANDS:
            began = time.perf_counter()
            done = subprocess.run([_executable(command[0]), *command[1:]], env=env, capture_output=True, text=True,
                                  timeout=120)
            times[label].append((time.perf_counter() - began) * 1000)
            if done.returncode != 0:
                failures[label] += 1
                errors[label] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    reference = statistics.median(times[COMMANDS[0][0]])
    rows = []
    for label, _, target in COMMANDS:
        median = statistics.median(times[label])
        rows.append(Row(label, runs, round(median, 1), round(min(times[label]), 1),
                        None if target is None else round(median / reference, 2), target, failures[label],
                        errors[label]))
    return rows


#: ``jobs simulate`` over a year of the shipped jobs file, in each APP_ENV (issue 16: under a second).
SIMULATE_TARGET_MS = 1000.0
SIMULATE = ["broker-jobs", "jobs", "simulate", "--from", "2026-01-01T00:00:00Z", "--to", "2027-01-01T00:00:00Z"]


def measure_simulate(runs: int, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A year of the shipped jobs file played by ``jobs simulate`` (table output, thrown away), per APP_ENV."""
    compile_package()
    rows = []
    for app_env in ("development", "production"):
        times, slots, error = [], None, None
        for _ in range(runs):
            began = time.perf_counter()
            done = subprocess.run([_executable(SIMULATE[0]), *SIMULATE[1:]], capture_output=True, text=True,
                                  env={**(env or os.environ), "APP_ENV": app_env}, timeout=120)
            times.append((time.perf_counter() - began) * 1000)
            if done.returncode != 0:
                error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            else:
                slots = int(done.stdout.rstrip().rsplit("\n", 1)[-1].split()[0])
        rows.append({"app_env": app_env, "slots": slots, "runs": runs, "median_ms": round(statistics.median(times), 1),
                     "min_ms": round(min(times), 1), "target_ms": SIMULATE_TARGET_MS, "error": error})
    return rows


def simulate_table(rows: list[dict[str, Any]]) -> str:
    """The simulation rows as a Markdown table."""
    out = ["| APP_ENV | slots in the year | median | min | target |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        failed = f" (failed: {r['error']})" if r.get("error") else ""
        slots = f"{r['slots']:,}" if r.get("slots") is not None else "–"
        out.append(f"| {r['app_env']}{failed} | {slots} | {r['median_ms']:.0f} ms | {r['min_ms']:.0f} ms "
                   f"| ≤ {r['target_ms']:.0f} ms |")
    return "\n".join(out)


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    out = ["| command | median | min | × dramatiq --help | target |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}×"
        target = "-" if r.target is None else f"≤ {r.target:g}×"
        failed = f" (failed {r.failures}/{r.runs}: {r.error})" if r.failures else ""
        out.append(f"| `{r.command}`{failed} | {r.median_ms:.0f} ms | {r.min_ms:.0f} ms | {ratio} | {target} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/cli_startup.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    rows = measure(args.runs, dict(os.environ))
    simulated = measure_simulate(max(1, args.runs // 3), dict(os.environ))
    if args.json:
        print(json.dumps({"cli": [asdict(r) for r in rows], "simulate": simulated}))
    else:
        print(table(rows))
        print()
        print(simulate_table(simulated))
    return 1 if any(r.failures for r in rows) else 0


def as_results(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows as benchmarks/run.py keeps them."""
    return [asdict(r) for r in rows]


if __name__ == "__main__":
    sys.exit(main())

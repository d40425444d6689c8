"""CLI start-up: ``broker-jobs`` commands against ``dramatiq --help``, N runs each, interleaved, medians compared.

Targets (issue 14): ``broker-jobs --help`` within 2.5x ``dramatiq --help``; ``send``, ``history`` and ``jobs list``
within 5x.  ``send diagnostics`` publishes for real (to ``RABBITMQ_URL``); ``history`` reads ``DATABASE_URL``.

    python benchmarks/cli_startup.py --runs 10          # a table on stdout
    python benchmarks/cli_startup.py --runs 3 --json    # one JSON object (what benchmarks/run.py and the test read)
    python benchmarks/cli_startup.py --runs 5 --simulate-only   # only a year of `jobs simulate`, table and --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

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
    """A year of the shipped jobs file played by ``jobs simulate`` (output thrown away), per APP_ENV, as the table
    and as ``--json``; each command ``runs`` times, interleaved, medians."""
    compile_package()
    cases = [(app_env, output) for app_env in ("development", "production") for output in ("table", "json")]
    times: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    slots: dict[tuple[str, str], int | None] = dict.fromkeys(cases)
    errors: dict[tuple[str, str], str | None] = dict.fromkeys(cases)
    for _ in range(runs):
        for app_env, output in cases:
            command = [_executable(SIMULATE[0]), *SIMULATE[1:], *(["--json"] if output == "json" else [])]
            # Into a file, as `> file` would: a pipe read by this process would time its reading too.
            with tempfile.TemporaryFile() as out:
                began = time.perf_counter()
                done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True,
                                      env={**(env or os.environ), "APP_ENV": app_env}, timeout=120)
                times[app_env, output].append((time.perf_counter() - began) * 1000)
                if done.returncode != 0:
                    errors[app_env, output] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                else:
                    slots[app_env, output] = _slots(out, output)
    return [{"app_env": app_env, "output": output, "slots": slots[app_env, output], "runs": runs,
             "median_ms": round(statistics.median(times[app_env, output]), 1),
             "min_ms": round(min(times[app_env, output]), 1), "target_ms": SIMULATE_TARGET_MS,
             "error": errors[app_env, output]} for app_env, output in cases]


def _slots(out: IO[bytes], output: str) -> int:
    """The slots ``jobs simulate`` printed: the table's count line, or the JSON array's lines."""
    out.seek(0)
    if output == "json":
        return sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b"")) - 2  # "[" and "]"
    out.seek(max(0, out.seek(0, os.SEEK_END) - 500))
    return int(out.read().decode().rstrip().rsplit("\n", 1)[-1].split()[0])


def simulate_table(rows: list[dict[str, Any]]) -> str:
    """The simulation rows as a Markdown table."""
    out = ["| APP_ENV | output | slots in the year | median | min | target |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        failed = f" (failed: {r['error']})" if r.get("error") else ""
        slots = f"{r['slots']:,}" if r.get("slots") is not None else "–"
        output = "`--json`" if r.get("output") == "json" else "table"
        out.append(f"| {r['app_env']}{failed} | {output} | {slots} | {r['median_ms']:.0f} ms | {r['min_ms']:.0f} ms "
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
    parser.add_argument("--simulate-only", action="store_true", help="only the simulation (each case --runs times)")
    args = parser.parse_args(argv)
    rows = [] if args.simulate_only else measure(args.runs, dict(os.environ))
    simulated = measure_simulate(args.runs if args.simulate_only else max(1, args.runs // 2), dict(os.environ))
    if args.json:
        print(json.dumps({"cli": [asdict(r) for r in rows], "simulate": simulated}))
    else:
        if rows:
            print(table(rows))
            print()
        print(simulate_table(simulated))
    return 1 if any(r.failures for r in rows) else 0


def as_results(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows as benchmarks/run.py keeps them."""
    return [asdict(r) for r in rows]


if __name__ == "__main__":
    sys.exit(main())

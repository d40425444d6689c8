"""The results as a Markdown table (stdout and ``results/RESULTS.md``) and a PNG chart.

Targets are computed here from the figures of one run, as ratios where the
issue states ratios: a target is never judged against another run's numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cli_startup import Row as CliRow
from .cli_startup import simulate_table
from .cli_startup import table as cli_table
from .cluster import markdown as cluster_markdown
from .peers import PEERS
from .scheduler_burst import SCHEDULERS

TARGET_VS_DRAMATIQ = 0.9
TARGET_VS_CELERY = 2.0
TARGET_BURST_MS = 250.0
TARGET_VS_FLOOR = 1.3
TARGET_IDLE_CPU = 1.0
TARGET_IDLE_MIB = 150.0


def _f(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def _status(row: dict[str, Any]) -> str:
    return f" ({row['error']})" if row.get("error") else ""


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, figure, verdict) rows; verdict is met, MISSED or pending."""
    rows: list[tuple[str, str, str]] = []
    workers = {r["peer"]: r for r in results.get("throughput", [])}
    bj = (workers.get("broker_jobs") or {}).get("consumer_rate")
    for peer, factor in (("dramatiq", TARGET_VS_DRAMATIQ), ("celery", TARGET_VS_CELERY)):
        other = (workers.get(peer) or {}).get("consumer_rate")
        label = f"broker_jobs consumer rate ≥ {factor} × {PEERS[peer].label}"
        if bj and other:
            rows.append((label, f"{bj:,.0f}/s vs {other:,.0f}/s = {bj / other:.2f} ×",
                         "met" if bj >= factor * other else "MISSED"))
        else:
            rows.append((label, "–", "pending"))
    bursts = {(r["scheduler"], r["n"]): r for r in results.get("bursts", [])}
    ours, base = bursts.get(("broker_jobs", 1000)), bursts.get(("pika_tx", 1000))
    ms = ours.get("last_ms") if ours else None
    rows.append((f"scheduler: 1,000 due jobs confirmed within {TARGET_BURST_MS:.0f} ms of the slot",
                 f"{ms:,.0f} ms" if ms else "–",
                 "pending" if ms is None else "met" if ms <= TARGET_BURST_MS else "MISSED"))
    floor_ms = base.get("last_ms") if base else None
    rows.append((f"scheduler: 1,000 due jobs ≤ {TARGET_VS_FLOOR} × raw-pika transaction floor",
                 f"{ms:,.0f} ms vs {floor_ms:,.0f} ms = {ms / floor_ms:.2f} ×" if ms and floor_ms else "–",
                 "pending" if not (ms and floor_ms) else "met" if ms <= TARGET_VS_FLOOR * floor_ms else "MISSED"))
    idle = next((r for r in results.get("idle", []) if r["scheduler"] == "broker_jobs"), None)
    cpu, mib = (idle or {}).get("cpu_percent"), (idle or {}).get("rss_mib")
    n = (idle or {}).get("n", 10_000)
    rows.append((f"idle scheduler with {n:,} schedules < {TARGET_IDLE_CPU:.0f}% CPU and < {TARGET_IDLE_MIB:.0f} MB",
                 f"{cpu:.2f}% CPU, {mib:.0f} MiB" if cpu is not None and mib is not None else "–",
                 "pending" if cpu is None or mib is None
                 else "met" if cpu < TARGET_IDLE_CPU and mib < TARGET_IDLE_MIB else "MISSED"))
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The whole results page."""
    meta, machine = results["meta"], results["machine"]
    out = [
        "# Benchmark results",
        "",
        f"Run {meta['started']} UTC, `{meta['command']}` ({meta['duration_s']:.0f} s). "
        "Figures are from one run on one machine: compare ratios, not absolute numbers.",
        "",
        *(["**--quick run: tiny N, the figures and verdicts below mean nothing; it only shows the "
           "harness works.**", ""] if meta.get("quick") else []),
        "## Machine",
        "",
        *(f"- **{k}**: {v}" for k, v in machine.items()),
        "",
        "## Targets",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        *(f"| {t} | {f} | {v} |" for t, f, v in targets(results)),
        "",
    ]
    if results.get("throughput"):
        out += [
            f"## Worker throughput ({meta['n']:,} no-op jobs, each one Redis INCR)",
            "",
            "Producer: one thread publishing through the peer's own API, no consumer running. "
            "Consumer: from the first to the last counter increment (start-up excluded). "
            f"Latency: send → start at a steady {meta['latency_rate']:g}/s for {meta['latency_seconds']:g} s.",
            "",
            f"Consumer rates: the median of {meta.get('rounds', 1)} interleaved rounds (every round in "
            "brackets).",
            "",
            "| worker | processes | producer /s | consumer /s | rounds | latency p50 | latency p99 "
            "| RSS per process | RSS total |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for r in results["throughput"]:
            each = ", ".join(_f(rate) for rate in r.get("consumer_rates") or [r["consumer_rate"]])
            out.append(
                f"| {PEERS[r['peer']].label}{_status(r)} | {r['processes']} | {_f(r['producer_rate'])} "
                f"| {_f(r['consumer_rate'])} | [{each}] | {_f(r['latency_p50_ms'], '{:.1f} ms')} "
                f"| {_f(r['latency_p99_ms'], '{:.1f} ms')} | {_f(r['rss_max_mib'], '{:.0f} MiB')} "
                f"| {_f(r['rss_total_mib'], '{:.0f} MiB')} |")
        bj = next((r for r in results["throughput"] if r["peer"] == "broker_jobs"), None)
        prio = next((r for r in results["throughput"] if r["peer"] == "dramatiq_prio"), None)
        if bj and prio and bj.get("consumer_rate") and prio.get("consumer_rate"):
            out += ["", f"broker_jobs ÷ bare Dramatiq on the same kind of queue (x-max-priority 10): "
                        f"{bj['consumer_rate'] / prio['consumer_rate']:.2f} × (no target; the targets compare "
                        "with bare Dramatiq on a plain queue)."]
        late = next((r for r in results["throughput"] if r["peer"] == "celery_late"), None)
        if bj and late and bj.get("consumer_rate") and late.get("consumer_rate"):
            out += ["", f"broker_jobs ÷ Celery acknowledging after the task (acks_late, the guarantee "
                        f"broker_jobs gives): {bj['consumer_rate'] / late['consumer_rate']:.2f} × (no target; "
                        "the target compares with Celery's default, acknowledging before the task)."]
        if bj and bj.get("history_rows") is not None:
            out += ["", f"broker_jobs wrote {bj['history_rows']:,} run-history rows (history on)."]
        out += ["", "Threads: Dramatiq and broker_jobs 8 per process; Celery prefork (1 task per process); "
                "raw pika one consumer per process, prefetch 16. Publisher confirms: broker_jobs yes "
                "(one round trip per message), the others no.", ""]
    if results.get("cluster"):
        out += cluster_markdown(results["cluster"])
    if results.get("scaling"):
        counts = sorted({r["processes"] for r in results["scaling"]})
        out += ["## Consumer rate by worker processes", "",
                "| worker | " + " | ".join(f"{c} proc." for c in counts) + " |",
                "|---|" + "---:|" * len(counts)]
        for name, peer in PEERS.items():
            by = {r["processes"]: r for r in results["scaling"] if r["peer"] == name}
            if by:
                cells = [_f(by[c]["consumer_rate"]) + ("" if not by.get(c, {}).get("error") else " (failed)")
                         if c in by else "–" for c in counts]
                out.append(f"| {peer.label} | " + " | ".join(cells) + " |")
        out.append("")
    if results.get("bursts"):
        sizes = sorted({r["n"] for r in results["bursts"]})
        out += ["## Scheduler burst: ms from the slot to the last message published", "",
                "N jobs due in the same slot; measured from outside by polling the queue depth every 5 ms. "
                "The floor is raw pika publishing N durable messages in one transaction at the slot.", "",
                "| scheduler | confirms | " + " | ".join(f"{s:,} due" for s in sizes) + " | RSS |",
                "|---|---|" + "---:|" * len(sizes) + "---:|"]
        failures: list[str] = []
        labels = {"pika_tx": ("raw pika, one transaction (floor)", "transaction")}
        labels.update({k: (v.label, v.confirms) for k, v in SCHEDULERS.items()})
        for name, (label, confirms) in labels.items():
            by = {r["n"]: r for r in results["bursts"] if r["scheduler"] == name}
            if not by:
                continue
            cells = []
            for s in sizes:
                r = by.get(s)
                if r is not None and r.get("error"):
                    failures.append(f"{label}, {s:,} due: {r['error']}")
                cells.append("–" if r is None else f"failed ({len(failures)})" if r.get("error")
                             else _f(r["last_ms"]))
            rss = max((r.get("rss_mib") or 0 for r in by.values()), default=0)
            out.append(f"| {label} | {confirms} | " + " | ".join(cells) + f" | {_f(rss or None, '{:.0f} MiB')} |")
        out.append("")
        out += [f"({i}) {text}  " for i, text in enumerate(failures, 1)]
        out.append("")
    if results.get("idle"):
        out += ["## Idle scheduler", "",
                f"Holding N schedules all due hours later; CPU over {meta['idle_seconds']:g} s after start-up.",
                "", "| scheduler | schedules | CPU (% of a core) | RSS | start-up |", "|---|---:|---:|---:|---:|"]
        for r in results["idle"]:
            out.append(f"| {SCHEDULERS[r['scheduler']].label}{_status(r)} | {r['n']:,} "
                       f"| {_f(r['cpu_percent'], '{:.2f}%')} | {_f(r['rss_mib'], '{:.0f} MiB')} "
                       f"| {_f(r['startup_s'], '{:.1f} s')} |")
        out.append("")
    if results.get("cli"):
        out += ["## CLI start-up", "", "Median of interleaved runs, against `dramatiq --help`.", "",
                cli_table([CliRow(**r) for r in results["cli"]]), ""]
    if results.get("simulate"):
        out += ["## Schedule simulation", "",
                "`broker-jobs jobs simulate` over a year of the shipped jobs file (every slot and its decision, as "
                "the table and as `--json`, into a file), whole process, median of interleaved runs.", "",
                simulate_table(results["simulate"]), ""]
    for note in results.get("notes", []):
        out.append(f"- {note}")
    return "\n".join(out).rstrip() + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Four panels: consumer/producer rates, scaling, scheduler bursts, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (rates, scaling), (bursts, memory) = axes
    rows = results.get("throughput", [])
    labels = [PEERS[r["peer"]].label for r in rows]
    xs = range(len(rows))
    rates.bar([x - 0.2 for x in xs], [r["consumer_rate"] or 0 for r in rows], 0.4, label="consumer")
    rates.bar([x + 0.2 for x in xs], [r["producer_rate"] or 0 for r in rows], 0.4, label="producer")
    rates.set_xticks(list(xs), labels)
    rates.set_ylabel("jobs / s")
    rates.set_title("Worker throughput (higher is better)")
    rates.legend()
    for name, peer in PEERS.items():
        pts = sorted((r["processes"], r["consumer_rate"]) for r in results.get("scaling", [])
                     if r["peer"] == name and r["consumer_rate"])
        if pts:
            scaling.plot(*zip(*pts, strict=True), marker="o", label=peer.label)
    scaling.set_xlabel("worker processes")
    scaling.set_ylabel("consumer jobs / s")
    scaling.set_title("Consumer rate by processes")
    if scaling.lines:
        scaling.legend()
    names = {"pika_tx": "raw pika tx (floor)", **{k: v.label for k, v in SCHEDULERS.items()}}
    for name, label in names.items():
        pts = sorted((r["n"], r["last_ms"]) for r in results.get("bursts", [])
                     if r["scheduler"] == name and r["last_ms"])
        if pts:
            bursts.plot(*zip(*pts, strict=True), marker="o", label=label)
    bursts.set_xscale("log")
    bursts.set_yscale("log")
    bursts.set_xlabel("jobs due in one slot")
    bursts.set_ylabel("ms, slot → last publish")
    bursts.set_title("Scheduler burst (lower is better)")
    if bursts.lines:
        bursts.legend(fontsize=8)
    mem = [(PEERS[r["peer"]].label + " worker", r["rss_max_mib"] or 0) for r in rows]
    mem += [(SCHEDULERS[r["scheduler"]].label.split(" +")[0] + f" ({r['n']:,})", r["rss_mib"] or 0)
            for r in results.get("idle", [])]
    if mem:
        memory.barh([m[0] for m in mem], [m[1] for m in mem])
    memory.set_xlabel("RSS per process, MiB")
    memory.set_title("Memory (workers; idle schedulers)")
    fig.suptitle(f"broker_jobs benchmarks, {results['meta']['started']} UTC, {results['machine']['cpu']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Writes the server benches' latest results (bench/results/*.json) into docs/benchmarks.md,
between the `<!-- server-benches:begin -->` and `<!-- server-benches:end -->` markers: the
issue 14 targets against what this run measured, then each bench's tables with its command,
time and load average.

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- server-benches:begin -->", "<!-- server-benches:end -->"
ORDER = (
    ("ingest", "Ingest through daphne"),
    ("live_latency", "Live latency: ingest to frame"),
    ("list", "Sessions page, panel and API at 10k and 1M sessions"),
    ("sockets", "Reconnect storm, idle socket memory, latency against socket count"),
    ("push_poll", "Push vs poll under churn"),
)


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool | None) -> str:
    return "no data" if ok is None else "**met**" if ok else "**not met**"


def targets(r: dict[str, dict[str, Any] | None]) -> list[list[str]]:
    rows: list[list[str]] = []
    lists = r["list"]["results"] if r["list"] else None
    if lists:
        sizes = sorted(int(s) for s in lists)
        small, large = str(sizes[0]), str(sizes[-1])
        personas = [p for p in lists[large] if not p.startswith("_")]
        for endpoint, goal in (("sessions page", 1.2), ("panel", 1.2)):
            ratios = {p: lists[large][p][endpoint] / lists[small][p][endpoint] for p in personas}
            worst = max(ratios.values())
            text = ", ".join(f"{p} {v:.2f}x" for p, v in ratios.items())
            rows.append(
                [
                    f"{endpoint}, {int(large):,} vs {int(small):,}",
                    f"≤ {goal}x",
                    text,
                    verdict(worst <= goal),
                ]
            )
        deep = {
            p: lists[large][p]["API deep page"] / lists[large][p]["API first page"]
            for p in personas
        }
        rows.append(
            [
                f"API deep keyset page vs first page at {int(large):,}",
                "≤ 1.5x",
                ", ".join(f"{p} {v:.2f}x" for p, v in deep.items()),
                verdict(max(deep.values()) <= 1.5),
            ]
        )
    ingest = r["ingest"]["results"] if r["ingest"] else None
    if ingest:
        one = ingest.get("b1_c1")
        if one:
            rows.append(
                [
                    "1-event ingest request (one client), p50",
                    "≤ 12 ms",
                    f"{one['app_p50_ms']:.1f} ms",
                    verdict(one["app_p50_ms"] <= 12),
                ]
            )
        hundred = next((v for k, v in ingest.items() if k.startswith("b100_")), None)
        if hundred:
            rows.append(
                [
                    "batch of 100 through daphne / raw executemany",
                    "≥ 0.30",
                    f"{hundred['ratio']:.2f}",
                    verdict(hundred["ratio"] >= 0.30),
                ]
            )
    live = r["live_latency"]["results"] if r["live_latency"] else None
    if live:
        for single in live.get("batch1", [])[:1]:
            ok = (
                single["answered"] == single["requests"]
                and single["delivered"] >= 0.9999
                and (single["ingest_p99_ms"] or 1e9) <= 100
            )
            rows.append(
                [
                    f"{live['rate']:g} single-event requests/s with {live['clients']} dashboards",
                    "all answered, all delivered, ingest p99 ≤ 100 ms",
                    f"{single['answered']:,} of {single['requests']:,} answered, {single['delivered']:.1%} delivered, "
                    f"ingest p99 {single['ingest_p99_ms'] or 'n/a'} ms",
                    verdict(ok),
                ]
            )
        for batch in live.get("batch10", [])[:1]:
            p50, p99 = batch["ratio_p50"], batch["ratio_p99"]
            ok = p50 is not None and p99 is not None and p50 <= 4 and p99 <= 3
            shown = (
                f"{p50:.1f}x / {p99:.1f}x ({batch['p50_ms']} / {batch['p99_ms']} ms vs raw {live['raw']['p50_ms']} / {live['raw']['p99_ms']} ms)"
                if p50 and p99
                else "frames lost"
            )
            rows.append(
                [
                    f"live latency, {live['clients']} dashboards, {live['rate']:g} ev/s in batches of 10, p50 / p99 vs raw",
                    "≤ 4x / ≤ 3x",
                    shown,
                    verdict(ok),
                ]
            )
    sockets = r["sockets"]["results"] if r["sockets"] else None
    if sockets:
        storm = sockets["storm"]
        ok = storm["failures"] == 0 and storm["seconds_to_all_snapshots"] <= 10
        rows.append(
            [
                f"{sockets['sockets']:,} dashboards reconnecting ({sockets['in_flight']} handshakes in flight)",
                "all snapshots within 10 s, 0 failures",
                f"{storm['seconds_to_all_snapshots']:.1f} s, {storm['failures']} failures",
                verdict(ok),
            ]
        )
        t = r["sockets"]["tracebacks"] if r["sockets"] else 0
        closed = sockets.get("close", {}).get("sockets", sockets["memory"]["sockets"])
        rows.append(
            [
                f"closing {closed:,} sockets at once",
                "0 tracebacks",
                f"{t} tracebacks",
                verdict(t == 0),
            ]
        )
    pp = r["push_poll"]["results"] if r["push_poll"] else None
    if pp:
        ratio = pp.get("ratio")
        rows.append(
            [
                f"DB statements/min, {pp['clients']} pushed vs polling dashboards",
                "≥ 20x fewer",
                f"{ratio:.1f}x fewer" if ratio else "pushing cost no measurable statements",
                verdict(ratio is None or ratio >= 20),
            ]
        )
    return rows


def render() -> str:
    r = {name: load(name) for name, _ in ORDER}
    out = [BEGIN, ""]
    rows = targets(r)
    if rows:
        out += [
            "### Issue 14 targets in this run",
            "",
            "| what | target | this run | |",
            "|---|---|---|---|",
        ]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    for name, title in ORDER:
        data = r[name]
        if not data:
            continue
        out += [
            f"### {title}",
            "",
            "```",
            data["command"],
            "```",
            "",
            f"Run {data['when']} in {data['seconds']:.0f} s; load average (1, 5, 15 min) "
            f"{', '.join(map(str, data['load_start']))} at the start, "
            f"{', '.join(map(str, data['load_end']))} at the end; {data['machine']}.",
            "",
        ]
        for table in data["tables"]:
            out += [f"{table['title']}:", "", table["markdown"], ""]
        out += list(data.get("notes", []))
        out.append("")
    out.append(END)
    return "\n".join(out)


def main() -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{DOC} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + render() + tail)
    print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

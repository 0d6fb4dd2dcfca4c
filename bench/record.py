"""The numbers side of the benches: percentiles, the load average, Markdown tables and the
results file each bench writes (bench/results/<name>.json, read by plot.py and report.py)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MACHINE = (
    "2 cores shared with other engineers' test runs; PostgreSQL 15 and Redis on the same machine"
)


# --- numbers ----------------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    index = min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))
    return data[index]


def loadavg() -> list[float]:
    return [round(float(x), 2) for x in Path("/proc/loadavg").read_text().split()[:3]]


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    if value == float("inf"):
        return "lost"
    return f"{value:,.{digits}f}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Run:
    """The record of one bench run: its command, load averages, tables and numbers, written to
    bench/results/<name>.json (the plot and docs/benchmarks.md read them)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.data: dict[str, Any] = {
            "bench": name,
            "command": " ".join([".venv/bin/python", *(sys.argv if sys.argv[0] else ["-"])]),
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": MACHINE,
            "load_start": loadavg(),
            "tables": [],
        }

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        text = md_table(headers, rows)
        print(f"\n{title}\n\n{text}\n", flush=True)
        self.data["tables"].append({"title": title, "markdown": text})

    def note(self, text: str) -> None:
        print(text, flush=True)
        self.data.setdefault("notes", []).append(text)

    def save(self, **numbers: Any) -> Path:
        self.data.update(numbers)
        self.data["load_end"] = loadavg()
        self.data["seconds"] = round(time.monotonic() - self.started, 1)
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        print(
            f"load average {self.data['load_start']} -> {self.data['load_end']}; "
            f"{self.data['seconds']} s; wrote {path.relative_to(ROOT)}",
            flush=True,
        )
        return path

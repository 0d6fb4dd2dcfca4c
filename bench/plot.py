"""Draws docs/benchmarks.svg from the latest results in bench/results/: request latency against
the number of sessions (list bench) and push latency against the number of sockets (sockets
bench). Plain SVG written by hand, both axes logarithmic.

    .venv/bin/python bench/plot.py
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "benchmarks.svg"
COLOURS = {
    "tenant admin": "#1f77b4",
    "maintainer": "#ff7f0e",
    "developer": "#2ca02c",
    "owner": "#d62728",
}
W, H, PAD = 460, 330, 58


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def nice_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for exp in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**exp
            if lo <= v <= hi:
                ticks.append(float(v))
    return ticks


def label(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def panel(
    x0: float, title: str, xlabel: str, series: Sequence[dict[str, Any]], xs: Sequence[float]
) -> list[str]:
    """One log-log chart; each series: {name, colour, dash, points: [(x, y)]}."""
    ys = [y for s in series for _, y in s["points"] if y and y > 0]
    if not ys or not xs:
        return [f'<text x="{x0 + W / 2}" y="{H / 2}" text-anchor="middle">{title}: no data</text>']
    ylo, yhi = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    xlo, xhi = min(xs), max(xs)
    if xlo == xhi:
        xlo, xhi = xlo / 2, xhi * 2

    def px(x: float) -> float:
        return (
            x0
            + PAD
            + (math.log10(x) - math.log10(xlo))
            / (math.log10(xhi) - math.log10(xlo))
            * (W - PAD - 20)
        )

    def py(y: float) -> float:
        return (
            H
            - PAD
            + 10
            - (math.log10(y) - math.log10(ylo))
            / (math.log10(yhi) - math.log10(ylo))
            * (H - PAD - 30)
        )

    out = [f'<text x="{x0 + W / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>']
    out.append(
        f'<rect x="{x0 + PAD}" y="20" width="{W - PAD - 20}" height="{H - PAD - 10}" fill="none" stroke="#999"/>'
    )
    for t in nice_ticks(ylo, yhi):
        out.append(
            f'<line x1="{x0 + PAD}" x2="{x0 + W - 20}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x0 + PAD - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label(t)}</text>'
        )
    for t in xs:
        out.append(
            f'<text x="{px(t):.1f}" y="{H - PAD + 26}" text-anchor="middle">{label(t)}</text>'
        )
    out.append(f'<text x="{x0 + W / 2}" y="{H - 14}" text-anchor="middle">{xlabel}</text>')
    out.append(
        f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {H / 2})">ms (log)</text>'
    )
    for k, s in enumerate(series):
        pts = [(px(x), py(y)) for x, y in s["points"] if y and y > 0]
        dash = ' stroke-dasharray="5,4"' if s.get("dash") else ""
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{s["colour"]}" stroke-width="2"{dash}/>'
            )
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s["colour"]}"/>')
        ly = 34 + 14 * k
        out.append(
            f'<line x1="{x0 + PAD + 8}" x2="{x0 + PAD + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{s["colour"]}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{x0 + PAD + 32}" y="{ly}">{s["name"]}</text>')
    return out


def main() -> None:
    parts: list[str] = []
    lists = load("list")
    if lists:
        sizes = sorted(int(s) for s in lists["results"])
        series = []
        for persona, colour in COLOURS.items():
            for endpoint, dash in (("sessions page", False), ("panel", True)):
                pts = [(float(s), lists["results"][str(s)][persona][endpoint]) for s in sizes]
                series.append(
                    {
                        "name": f"{persona}: {endpoint}",
                        "colour": colour,
                        "dash": dash,
                        "points": pts,
                    }
                )
        parts += panel(
            0,
            "Sessions page and panel vs sessions",
            "sessions in the table (log)",
            series,
            [float(s) for s in sizes],
        )
    sockets = load("sockets")
    live = load("live_latency")
    if sockets:
        points = sorted(sockets["results"]["latency_by_sockets"], key=lambda p: p["sockets"])
        xs = [float(p["sockets"]) for p in points]
        series = [
            {
                "name": "app p50",
                "colour": "#1f77b4",
                "points": [(float(p["sockets"]), p["p50_ms"]) for p in points],
            },
            {
                "name": "app p99",
                "colour": "#d62728",
                "points": [(float(p["sockets"]), p["p99_ms"]) for p in points],
            },
        ]
        if live:
            raw = live["results"]["raw"]
            n = float(live["results"]["clients"])
            series.append(
                {
                    "name": f"raw floor p50 ({n:g} sockets)",
                    "colour": "#1f77b4",
                    "dash": True,
                    "points": [(n, raw["p50_ms"])],
                }
            )
            series.append(
                {
                    "name": f"raw floor p99 ({n:g} sockets)",
                    "colour": "#d62728",
                    "dash": True,
                    "points": [(n, raw["p99_ms"])],
                }
            )
        parts += panel(
            W + 20,
            "Push latency vs open sockets (one daphne)",
            "dashboard sockets (log)",
            series,
            xs,
        )
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 20}" height="{H}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        *parts,
        "</svg>",
    ]
    OUT.write_text("\n".join(svg) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

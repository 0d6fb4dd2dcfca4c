"""What the Insights page and strip show: each plot with the table of the same numbers, built
from `selectors.insights_for`. Raw values travel with the formatted text (data-value), so a
test can hold every figure on the page against the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from command_center import charts
from sessions_app.selectors import Insights
from sessions_app.states import Group, Kind

KIND_LABELS: dict[str, str] = {
    Kind.FLOW_RUN: "Flow runs",
    Kind.BACKGROUND_TASK: "Tasks",
    Kind.CHAT: "Chats",
}


@dataclass(frozen=True)
class Cell:
    text: str
    value: Any = ""  # the raw figure, for tests and for anyone reading the markup

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Plot:
    id: str
    title: str
    description: str
    chart: charts.Chart
    columns: list[str]
    rows: list[list[Cell]]


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None


def _c(value: Any, fmt: Any = charts.fmt_count) -> Cell:
    if value is None:
        return Cell("—", "")
    return Cell(fmt(float(value)), value)


def plots(ins: Insights) -> list[Plot]:
    days = [d.day.strftime("%a %d") for d in ins.per_day]
    hours = [h.start.strftime("%H:00") for h in ins.hours]
    kinds = list(Kind.values)
    out = [
        Plot(
            "started",
            "Sessions started per hour, by kind",
            "The last 24 hours, stacked by kind.",
            charts.column_chart(
                [h[:2] for h in hours],
                [(KIND_LABELS[k], f"s-{k}", [h.counts[k] for h in ins.hours]) for k in kinds],
                fmt=charts.fmt_count,
                label_every=3,
                show_totals=False,
            ),
            ["Hour", *[KIND_LABELS[k] for k in kinds], "Total"],
            [
                [Cell(label), *[_c(h.counts[k]) for k in kinds], _c(h.total)]
                for label, h in zip(hours, ins.hours, strict=True)
                if h.total
            ],
        ),
        Plot(
            "mix",
            "Status mix",
            f"Current status group of the sessions started in the last {ins.days} days.",
            charts.bar_chart(
                [label for _, label, _ in ins.groups],
                [n for _, _, n in ins.groups],
                fmt=charts.fmt_count,
                css=[f"g-{g}" for g, _, _ in ins.groups],
            ),
            ["Status", "Sessions"],
            [[Cell(label, g), _c(n)] for g, label, n in ins.groups],
        ),
        Plot(
            "failure",
            "Failure rate per day",
            "Of the sessions that finished each day, the share that failed.",
            charts.column_chart(
                days,
                [("failed", "g-problem", [d.failure_rate or 0.0 for d in ins.per_day])],
                fmt=charts.fmt_percent,
            ),
            ["Day", "Finished", "Failed", "Failure rate"],
            [
                [Cell(label), _c(d.finished), _c(d.failed), _c(d.failure_rate, charts.fmt_percent)]
                for label, d in zip(days, ins.per_day, strict=True)
            ],
        ),
        _durations_plot(ins),
        Plot(
            "waiting",
            "Time waiting for a person",
            "Time sessions spent waiting for input, paused or idle, by the day the wait began.",
            charts.column_chart(
                days,
                [("waiting", "g-attention", [d.waiting_seconds for d in ins.per_day])],
                fmt=charts.fmt_duration,
            ),
            ["Day", "Waiting"],
            [
                [Cell(label), _c(d.waiting_seconds, charts.fmt_duration)]
                for label, d in zip(days, ins.per_day, strict=True)
            ],
        ),
        Plot(
            "cost",
            "Cost per day",
            "The usage reported by runtimes each day.",
            charts.column_chart(
                days, [("", "s-cost", [d.cost for d in ins.per_day])], fmt=charts.fmt_cost
            ),
            ["Day", "Tokens", "Cost"],
            [
                [Cell(label), _c(d.tokens, charts.fmt_tokens), _c(d.cost, charts.fmt_cost)]
                for label, d in zip(days, ins.per_day, strict=True)
            ],
        ),
        Plot(
            "tokens",
            "Tokens per day",
            "Tokens in and out, as reported by runtimes each day.",
            charts.column_chart(
                days,
                [("tokens", "s-tokens", [d.tokens for d in ins.per_day])],
                fmt=charts.fmt_tokens,
            ),
            ["Day", "Tokens"],
            [
                [Cell(label), _c(d.tokens, charts.fmt_tokens)]
                for label, d in zip(days, ins.per_day, strict=True)
            ],
        ),
    ]
    for key, title, rows in (
        ("agents", "Per agent", ins.per_agent),
        ("owners", "Per owner", ins.per_owner),
    ):
        out.append(
            Plot(
                key,
                f"{title}: cost",
                f"The {len(rows)} with the highest cost in the window, with their sessions.",
                charts.bar_chart(
                    [b.name for b in rows], [b.cost for b in rows], fmt=charts.fmt_cost
                ),
                ["Name", "Started", "Finished", "Failure rate", "Tokens", "Cost"],
                [
                    [
                        Cell(b.name, b.name),
                        _c(b.started),
                        _c(b.finished),
                        _c(b.failure_rate, charts.fmt_percent),
                        _c(b.tokens, charts.fmt_tokens),
                        _c(b.cost, charts.fmt_cost),
                    ]
                    for b in rows
                ],
            )
        )
    return out


def _durations_plot(ins: Insights) -> Plot:
    keys = ["all", *Kind.values]
    names: dict[str, str] = {"all": "All", **KIND_LABELS}
    labels, values = [], []
    for key in keys:
        d = ins.durations[key]
        labels += [f"{names[key]} p50", f"{names[key]} p95"]
        values += [_seconds(d.p50), _seconds(d.p95)]
    return Plot(
        "duration",
        "Duration, p50 and p95",
        "From start to finish, of the sessions that finished in the window.",
        charts.bar_chart(labels, values, fmt=charts.fmt_duration),
        ["Kind", "Finished", "p50", "p95"],
        [
            [
                Cell(names[key], key),
                _c(ins.durations[key].finished),
                _c(_seconds(ins.durations[key].p50), charts.fmt_duration),
                _c(_seconds(ins.durations[key].p95), charts.fmt_duration),
            ]
            for key in keys
        ],
    )


def strip(ins: Insights) -> dict[str, Any]:
    """The few figures of the strip: today so far, and the started-per-hour sparkline."""
    today = ins.totals["today"]
    return {
        "today": today,
        "failure_rate": _c(today.failure_rate, charts.fmt_percent),
        "cost": _c(today.cost, charts.fmt_cost),
        "tokens": _c(today.tokens, charts.fmt_tokens),
        "waiting": _c(today.waiting_seconds, charts.fmt_duration),
        "p95": _c(_seconds(ins.durations["all"].p95), charts.fmt_duration),
        "started": _c(sum(h.total for h in ins.hours)),
        "spark": charts.column_chart(
            ["" for _ in ins.hours],
            [("started", "s-spark", [h.total for h in ins.hours])],
            fmt=charts.fmt_count,
            show_totals=False,
        ),
        "group_labels": dict(Group.choices),
    }

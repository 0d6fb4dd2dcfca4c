"""Server-side plots: the geometry of bar charts as plain numbers, which a template turns into
SVG (templates/command_center/insights.html#chart). No chart library, no script; colours come
from the page's CSS variables, so light and dark themes follow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 18, 30
HBAR_ROW, HBAR_LEFT = 22, 130


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    css: str = "tick"
    anchor: str = "middle"


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)  # y of horizontal grid lines
    baseline: float = 0.0
    left: float = LEFT


def _nice_max(value: float) -> float:
    """A round top for the y axis: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(value)


def _r(value: float) -> float:
    return round(value, 1)


def column_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | Decimal]]],
    *,
    fmt: Callable[[float], str],
    label_every: int = 1,
    show_totals: bool = True,
) -> Chart:
    """Vertical bars, stacked when there is more than one series: `series` is
    (name, css class, one value per label)."""
    totals = [sum(float(s[2][i]) for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    chart = Chart(WIDTH, HEIGHT, baseline=HEIGHT - BOTTOM)
    for step in (0.0, 0.5, 1.0):
        y = _r(HEIGHT - BOTTOM - step * plot_h)
        chart.grid.append(y)
        chart.labels.append(Label(LEFT - 6, y + 4, fmt(top * step), "tick", "end"))
    for i, label in enumerate(labels):
        x = LEFT + i * slot + slot * 0.15
        y = float(HEIGHT - BOTTOM)
        for name, css, values in series:
            value = float(values[i])
            if value <= 0:
                continue
            h = value / top * plot_h
            y -= h
            chart.bars.append(
                Bar(
                    _r(x),
                    _r(y),
                    _r(slot * 0.7),
                    _r(h),
                    css,
                    f"{label}: {fmt(value)} {name}".strip(),
                )
            )
        if show_totals and totals[i] > 0:
            chart.labels.append(Label(_r(x + slot * 0.35), _r(y - 4), fmt(totals[i]), "value"))
        if i % label_every == 0:
            chart.labels.append(Label(_r(x + slot * 0.35), HEIGHT - BOTTOM + 16, label))
    return chart


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | Decimal | None],
    *,
    fmt: Callable[[float], str],
    css: str | Sequence[str] = "bar",
) -> Chart:
    """Horizontal bars, one row per label, the value written after each bar (None: no data);
    `css` is one class for every bar or one per bar."""
    classes = [css] * len(labels) if isinstance(css, str) else list(css)
    height = TOP + HBAR_ROW * max(len(labels), 1) + 6
    numbers = [float(v) if v is not None else 0.0 for v in values]
    top = max(numbers, default=0.0) or 1.0
    plot_w = WIDTH - HBAR_LEFT - 90
    chart = Chart(WIDTH, height, baseline=0.0, left=HBAR_LEFT)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * HBAR_ROW
        w = (float(value) / top * plot_w) if value else 0.0
        text = fmt(float(value)) if value is not None else "no data"
        chart.labels.append(Label(HBAR_LEFT - 8, y + 13, label[:20], "tick", "end"))
        if w > 0:
            chart.bars.append(
                Bar(HBAR_LEFT, y + 2, _r(w), HBAR_ROW - 6, classes[i], f"{label}: {text}")
            )
        chart.labels.append(Label(_r(HBAR_LEFT + w + 6), y + 13, text, "value", "start"))
    return chart


# --- formats --------------------------------------------------------------------------------


def fmt_count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def fmt_percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def fmt_cost(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.3f}"


def fmt_tokens(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.0f}"


def fmt_duration(value: float) -> str:
    """Seconds, read as a person would say them."""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"

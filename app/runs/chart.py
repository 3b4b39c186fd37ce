"""Line charts of a metric across snapshot versions, computed here and drawn as SVG by a template.

The page's Content-Security-Policy forbids inline styles, so the template uses SVG presentation
attributes (stroke, fill) only, and no script or chart library.
"""

import math
from dataclasses import dataclass, field

WIDTH = 360
HEIGHT = 200
# Room for the y-axis labels on the left and the x-axis labels below.
LEFT = 52
RIGHT = 12
TOP = 12
BOTTOM = 30
Y_TICKS = 4


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    snapshot: int
    value: float


@dataclass
class ChartSeries:
    name: str
    points: list[ChartPoint]

    @property
    def polyline(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


@dataclass
class Chart:
    metric: str
    series: list[ChartSeries]
    x_ticks: list[tuple[float, int]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not any(series.points for series in self.series)


# Metric values closer to 0 than this are shown as a bound, because BLEU of a model that barely
# overlaps the references comes out as values such as 2.65e-24.
SMALLEST_SHOWN = 0.0001


def format_tick(value: float) -> str:
    """Format an axis label with three significant digits, and large values as whole numbers."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_value(value: float) -> str:
    """Format a metric value or change like an axis label, with values near 0 shown as a bound."""
    if value != 0 and abs(value) < SMALLEST_SHOWN:
        return f"<{SMALLEST_SHOWN}" if value > 0 else f">-{SMALLEST_SHOWN}"
    return format_tick(value)


def _nice_step(span: float) -> float:
    raw = span / Y_TICKS
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def build_chart(metric: str, data: dict[str, list[tuple[int, float]]]) -> Chart:
    """Scale each series of (snapshot number, value) pairs into the chart's drawing area."""
    values = [value for points in data.values() for _, value in points]
    snapshots = sorted({number for points in data.values() for number, _ in points})
    chart = Chart(metric=metric, series=[])
    if not values:
        chart.series = [ChartSeries(name=name, points=[]) for name in data]
        return chart

    low, high = min(values), max(values)
    if math.isclose(low, high):
        low, high = low - (abs(low) * 0.1 or 1), high + (abs(high) * 0.1 or 1)
    step = _nice_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step

    def y_of(value: float) -> float:
        return chart.bottom - (value - low) / (high - low) * (chart.bottom - chart.top)

    first, last = snapshots[0], snapshots[-1]

    def x_of(number: int) -> float:
        if first == last:
            return (chart.left + chart.right) / 2
        return chart.left + (number - first) / (last - first) * (chart.right - chart.left)

    chart.series = [
        ChartSeries(name=name, points=[
            ChartPoint(x=x_of(number), y=y_of(value), snapshot=number, value=value) for number, value in points
        ])
        for name, points in data.items()
    ]
    chart.x_ticks = [(x_of(number), number) for number in snapshots]
    ticks = round((high - low) / step)
    chart.y_ticks = [(y_of(low + i * step), format_tick(low + i * step)) for i in range(ticks + 1)]
    return chart

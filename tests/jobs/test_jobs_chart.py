"""Scaling of the metric charts on the runs page."""

from app.runs.chart import build_chart


def test_chart_scales_points_into_area() -> None:
    chart = build_chart("validation_loss", {"finetuned": [(1, 2.0), (3, 1.0)], "base": [(1, 3.0), (3, 3.0)]})

    finetuned, base = chart.series
    assert finetuned.points[0].x == chart.left
    assert finetuned.points[1].x == chart.right
    assert chart.top <= base.points[0].y < finetuned.points[0].y < finetuned.points[1].y <= chart.bottom
    assert [number for _, number in chart.x_ticks] == [1, 3]
    assert chart.y_ticks[0][1] == "1"
    assert chart.y_ticks[-1][1] == "3"
    assert finetuned.polyline == f"{chart.left:.1f},{finetuned.points[0].y:.1f} {chart.right:.1f},{finetuned.points[1].y:.1f}"


def test_chart_single_snapshot_centered() -> None:
    chart = build_chart("bleu", {"finetuned": [(4, 0.25)], "base": [(4, 0.25)]})

    point = chart.series[0].points[0]
    assert point.x == (chart.left + chart.right) / 2
    assert chart.top < point.y < chart.bottom
    assert not chart.empty


def test_chart_without_values_is_empty() -> None:
    chart = build_chart("chrf", {"finetuned": [], "base": []})

    assert chart.empty
    assert chart.y_ticks == []
    assert [series.name for series in chart.series] == ["finetuned", "base"]

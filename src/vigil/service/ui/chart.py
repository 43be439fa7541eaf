"""A small SVG line chart of open findings per day, computed here so the page needs no script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    day: date
    count: int


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: list[ChartPoint]
    peak: int

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def area(self) -> str:
        if not self.points:
            return ""
        base = self.height - PAD
        return f"{self.points[0].x:.1f},{base} {self.polyline} {self.points[-1].x:.1f},{base}"


PAD = 8


def line_chart(series: list[tuple[date, int]], width: int = 560, height: int = 120) -> LineChart:
    peak = max((n for _, n in series), default=0)
    scale = (height - 2 * PAD) / peak if peak else 0.0
    step = (width - 2 * PAD) / max(len(series) - 1, 1)
    points = [
        ChartPoint(x=PAD + i * step, y=height - PAD - n * scale, day=d, count=n) for i, (d, n) in enumerate(series)
    ]
    return LineChart(width, height, points, peak)

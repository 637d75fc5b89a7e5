"""The members registry by year (REG 5.6) with a chart of the membership dynamics."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template, request

from .common import engine, me


@dataclass(frozen=True)
class Bar:
    year: int
    count: int
    x: float
    y: float
    width: float
    height: float
    selected: bool


def chart(series: list[tuple[int, int]], selected: int, width: int = 640, height: int = 220) -> dict[str, object]:
    """Geometry of a bar chart (drawn as inline SVG by the template, no script needed)."""
    pad_left, pad_bottom, pad_top = 36, 28, 16
    plot_w = width - pad_left - 8
    plot_h = height - pad_bottom - pad_top
    top = max((c for _, c in series), default=0) or 1
    step = plot_w / max(len(series), 1)
    bars = [
        Bar(
            year,
            count,
            pad_left + i * step + step * 0.15,
            pad_top + plot_h - plot_h * count / top,
            step * 0.7,
            plot_h * count / top,
            year == selected,
        )
        for i, (year, count) in enumerate(series)
    ]
    ticks = sorted({0, top, top // 2})
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "baseline": pad_top + plot_h,
        "left": pad_left,
        "ticks": [(t, pad_top + plot_h - plot_h * t / top) for t in ticks],
    }


def install(bp: Blueprint) -> None:
    @bp.get("/members")
    def members() -> str:
        me()
        eng = engine()
        this_year = eng.clock.now().year
        year = request.args.get("year", type=int) or this_year
        year = min(max(year, 2000), 2100)
        series = eng.membership_dynamics(None, max(this_year, year))
        return render_template(
            "members.html",
            nav="members",
            year=year,
            members=eng.members(year),
            series=series,
            chart=chart(series, year),
        )

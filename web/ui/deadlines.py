"""The deadlines calendar (a month) and the execution-discipline report with its exports."""

from __future__ import annotations

import calendar as pycalendar
from datetime import date

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine.clock import REGION_TZ
from engine.directory import Role

from .. import exports
from .common import engine, me

MONTHS = [
    _l("Январь"), _l("Февраль"), _l("Март"), _l("Апрель"), _l("Май"), _l("Июнь"),
    _l("Июль"), _l("Август"), _l("Сентябрь"), _l("Октябрь"), _l("Ноябрь"), _l("Декабрь"),
]  # fmt: skip
WEEKDAYS = [_l("Пн"), _l("Вт"), _l("Ср"), _l("Чт"), _l("Пт"), _l("Сб"), _l("Вс")]


def _month_arg(raw: str | None, today: date) -> tuple[int, int]:
    if raw:
        try:
            year, month = (int(part) for part in raw.split("-", 1))
            if 2000 <= year <= 2100 and 1 <= month <= 12:
                return year, month
        except ValueError:
            pass
    return today.year, today.month


def install(bp: Blueprint) -> None:
    @bp.get("/deadlines")
    def deadlines() -> str:
        who = me()
        eng = engine()
        now = eng.clock.now()
        today = now.astimezone(REGION_TZ).date()
        year, month = _month_arg(request.args.get("month"), today)
        days = eng.deadline_month(who, year, month)
        cal = eng.calendar
        weeks = []
        for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            weeks.append(
                [
                    {
                        "date": d,
                        "in_month": d.month == month,
                        "today": d == today,
                        "working": cal.is_working_day(d),
                        "holiday": cal.holiday_name(d),
                        "entries": sorted(days.get(d, []), key=lambda e: (not e.overdue, e.task_name or "")),
                    }
                    for d in week
                ]
            )
        prev = (year - 1, 12) if month == 1 else (year, month - 1)
        nxt = (year + 1, 1) if month == 12 else (year, month + 1)
        return render_template(
            "deadlines.html",
            nav="deadlines",
            weeks=weeks,
            title=f"{MONTHS[month - 1]} {year}",
            weekdays=[str(w) for w in WEEKDAYS],
            prev=f"{prev[0]:04d}-{prev[1]:02d}",
            next=f"{nxt[0]:04d}-{nxt[1]:02d}",
            total=sum(len(v) for v in days.values()),
        )

    @bp.get("/reports/overdue")
    def overdue() -> Response | str:
        who = me()
        eng = engine()
        organisation = request.args.get("organisation") or None
        groups = eng.overdue_report(who, organisation)
        fmt = request.args.get("format")
        stamp = eng.clock.now().astimezone(REGION_TZ)
        if fmt == "csv":
            return Response(
                exports.to_csv(groups),
                mimetype="text/csv",
                headers={"Content-Disposition": f'attachment; filename="overdue-{stamp:%Y-%m-%d}.csv"'},
            )
        if fmt == "xlsx":
            return Response(
                exports.to_xlsx(groups, _("Просроченные задачи на %(d)s", d=f"{stamp:%d.%m.%Y}")),
                mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                headers={"Content-Disposition": f'attachment; filename="overdue-{stamp:%Y-%m-%d}.xlsx"'},
            )
        organisations = (
            eng.organisations() if who.has(Role.MINISTRY) or who.has(Role.COORDINATOR) or who.is_admin else []
        )
        return render_template(
            "overdue.html",
            nav="overdue",
            groups=groups,
            total=sum(len(g.items) for g in groups),
            organisation=organisation or "",
            organisations=organisations,
            today=stamp.date(),
        )

"""The execution-discipline report as CSV (UTF-8 with BOM, ';' for Russian Excel) and XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from engine.reports import OverdueGroup

COLUMNS = [
    ("Организация", 34),
    ("Процесс", 30),
    ("Задача", 40),
    ("Номер дела", 16),
    ("Исполнитель", 16),
    ("Срок", 12),
    ("Исходный срок", 14),
    ("Просрочено, дней", 12),
    ("Рабочих дней", 12),
    ("Эскалация", 11),
    ("Продлений", 10),
    ("Основание", 14),
    ("Расчёт срока", 60),
]


def rows(groups: Sequence[OverdueGroup]) -> list[list[object]]:
    result: list[list[object]] = []
    for group in groups:
        for i in group.items:
            result.append(
                [
                    group.organisation_name,
                    i.process_name or i.process_key,
                    i.task_name or i.task_id,
                    i.business_key or "",
                    i.assignee or "",
                    i.due_date,
                    i.original_date,
                    i.days_late,
                    i.working_days_late,
                    "да" if i.escalated else "нет",
                    i.extensions,
                    i.clause or "",
                    i.explanation,
                ]
            )
    return result


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a cell may not start with = + - @."""
    text = value.strftime("%d.%m.%Y") if hasattr(value, "strftime") else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def to_csv(groups: Sequence[OverdueGroup]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    for row in rows(groups):
        writer.writerow([_csv_safe(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(groups: Sequence[OverdueGroup], title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Просрочки"
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([])
    sheet.append([name for name, _ in COLUMNS])
    header_row = sheet.max_row
    for index, (_, width) in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=header_row, column=index)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE6F0")
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.column_dimensions[get_column_letter(index)].width = width
    for row in rows(groups):
        sheet.append([_csv_safe(v) if isinstance(v, str) else v for v in row])
        current = sheet.max_row
        for col in (6, 7):
            sheet.cell(row=current, column=col).number_format = "DD.MM.YYYY"
        sheet.cell(row=current, column=13).alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = f"A{header_row + 1}"
    sheet.auto_filter.ref = f"A{header_row}:{get_column_letter(len(COLUMNS))}{max(sheet.max_row, header_row)}"
    summary = book.create_sheet("По организациям")
    summary.append(["Организация", "Просроченных задач", "Наибольшая просрочка, дней"])
    for header in summary[1]:
        header.font = Font(bold=True)
    for group in groups:
        summary.append([group.organisation_name, len(group.items), group.max_days_late])
    summary.column_dimensions["A"].width = 40
    summary.column_dimensions["B"].width = 20
    summary.column_dimensions["C"].width = 26
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

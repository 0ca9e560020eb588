"""The one way to answer with a CSV download.

Cells a spreadsheet would read as a formula (starting with = + - @, a tab or a line break: client
names, notes and broker reasons come from people and brokers) get a leading apostrophe, as OWASP
advises, so they open as text. Plain numbers are left alone even when negative: -12.50 is a loss
that must stay a number to be summed, and no formula can hide in `[+-]digits[.digits]`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from flask import Response

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def neutralise(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def csv_response(name: str, header: list[str], rows: Iterable[Iterable]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    filename = UNSAFE_FILENAME.sub("_", name)  # client codes are part of some names
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={filename}.csv"}
    )

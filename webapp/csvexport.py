"""The one way to answer with a CSV download."""
from __future__ import annotations

import csv
import io
from typing import Iterable

from flask import Response


def csv_response(name: str, header: list[str], rows: Iterable[Iterable]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return Response(out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}.csv"})

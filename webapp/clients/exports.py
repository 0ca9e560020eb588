"""CSV exports of a client's positions and of its daily P&L over a date range."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import Response
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional, ValidationError

from webapp.csvexport import csv_response
from webapp.extensions import db
from webapp.models import Client, DailyPnl, Position
from webapp.timeutil import format_ist

MAX_DAYS = 3660


class ExportForm(FlaskForm):
    """One form for both exports: the current positions need no dates; the daily P&L needs a range."""

    kind = SelectField("Export", choices={"pnl": "Daily P&L", "positions": "Current positions"}, default="pnl")
    start = DateField("From (IST date)", validators=[Optional()])
    end = DateField("To (IST date)", validators=[Optional()])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.kind.data != "pnl":  # a snapshot of now: any dates sent along are not its business
            self.start.errors, self.end.errors = [], []
            return not any(f.errors for name, f in self._fields.items() if name not in ("start", "end"))
        for field, message in ((self.start, "Choose the first day."), (self.end, "Choose the last day.")):
            if field.data is None and not field.errors:
                field.errors = [*field.errors, message]
                valid = False
        return valid

    def validate_end(self, field):
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The last day is before the first.")
        if self.start.data and field.data and (field.data - self.start.data).days > MAX_DAYS:
            raise ValidationError("At most ten years at a time.")


def positions_csv(client: Client) -> Response:
    rows = db.session.execute(
        sa.select(Position).where(Position.client_id == client.id).order_by(Position.id)
    ).scalars()
    return csv_response(
        f"positions-{client.client_code}",
        [
            "client",
            "instrument",
            "product",
            "quantity",
            "average_price",
            "last_price",
            "unrealized_pnl",
            "realized_pnl",
            "last_price_at_ist",
            "last_price_stale",
        ],
        (
            [
                client.name,
                p.instrument.key,
                p.product,
                p.quantity,
                p.average_price,
                p.last_price or "",
                p.unrealized_pnl,
                p.realized_pnl,
                format_ist(p.price_at),
                "yes" if p.price_stale else "",
            ]
            for p in rows
        ),
    )


def daily_pnl_csv(client: Client, start: date, end: date) -> Response:
    rows = db.session.execute(
        sa.select(DailyPnl)
        .where(DailyPnl.client_id == client.id, DailyPnl.day >= start, DailyPnl.day <= end)
        .order_by(DailyPnl.day)
    ).scalars()
    return csv_response(
        f"pnl-{client.client_code}-{start}-{end}",
        ["client", "day", "realized", "unrealized", "total"],
        ([client.name, r.day.isoformat(), r.realized, r.unrealized, r.realized + r.unrealized] for r in rows),
    )

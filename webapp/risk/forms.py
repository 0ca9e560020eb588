"""The desk's own risk settings: its daily loss limit (the desk kill switch's breaker) and the IST
time of the intraday square-off."""

from __future__ import annotations

from datetime import time

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Optional, ValidationError

from webapp.inputs import AmountField
from webapp.models import DeskState
from webapp.timeutil import MARKET_CLOSE, MARKET_OPEN


def parse_clock(raw: str) -> time:
    """HH:MM (24-hour, IST) inside the market's hours, before the close: a later square-off would never send."""
    text = (raw or "").strip()
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
        raise ValueError("Enter a time as HH:MM, for example 15:15.")
    if len(hours) > 2 or len(minutes) != 2 or int(hours) > 23 or int(minutes) > 59:
        raise ValueError("Enter a time as HH:MM, for example 15:15.")
    at = time(int(hours), int(minutes))
    if not MARKET_OPEN < at < MARKET_CLOSE:
        raise ValueError(f"Choose a time after {MARKET_OPEN:%H:%M} and before the {MARKET_CLOSE:%H:%M} IST close.")
    return at


class DeskRiskForm(FlaskForm):
    max_daily_loss = AmountField(
        "Desk max daily loss (₹)", column=DeskState.max_daily_loss, minimum=0, validators=[Optional()]
    )
    squareoff_time = StringField("Intraday square-off time (IST, HH:MM)", validators=[Optional()])

    def validate_max_daily_loss(self, field):
        if field.data is not None and field.data <= 0:
            raise ValidationError("Enter an amount above zero, or leave it blank for no limit.")

    def validate_squareoff_time(self, field):
        try:
            self.squareoff()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def squareoff(self) -> time | None:
        """The square-off time entered (None: blank, the default)."""
        raw = self.squareoff_time.data or ""
        if len(raw) > 16:
            raise ValueError("Enter a time as HH:MM, for example 15:15.")
        return parse_clock(raw) if raw.strip() else None

"""Jinja filters and globals: IST times, rupees, the permission check, role names."""

from __future__ import annotations

from flask import Flask

from webapp.access import sees_every_client
from webapp.extensions import page_redis
from webapp.money import rupees
from webapp.permissions import ROLE_LABELS, user_can
from webapp.timeutil import format_ist
from webapp.trading import states

STATUS_CHIP = {  # the colour class a child's state shows with (presentation: not the domain's)
    states.NEW: "chip-muted",
    states.SUBMITTING: "chip-amber",
    states.UNKNOWN: "chip-red",
    states.PLACED: "chip-amber",
    states.OPEN: "chip-amber",
    states.PARTIAL: "chip-amber",
    states.COMPLETE: "chip-green",
    states.CANCELLED: "chip-muted",
    states.REJECTED: "chip-red",
    states.FAILED: "chip-red",
}


def init_app(app: Flask) -> None:
    app.jinja_env.filters["ist"] = format_ist
    app.jinja_env.filters["rupees"] = rupees
    app.jinja_env.filters["status_chip"] = STATUS_CHIP.__getitem__
    app.jinja_env.filters["pnl_class"] = pnl_class
    app.jinja_env.filters["dec"] = lambda d: "" if d is None else format(d.normalize(), "f")  # 0.1000 → 0.1
    app.jinja_env.globals.update(can=user_can, role_labels=ROLE_LABELS, sees_every_client=sees_every_client)
    # Redis does not answer (asked once per request): no price a page shows is live, all are marked stale
    app.jinja_env.globals["redis_down"] = lambda: page_redis() is None


def pnl_class(value) -> str:
    """The colour class of a signed amount or quantity: profit (or long) green, loss (or short) red, zero plain."""
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"

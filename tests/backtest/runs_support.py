"""A stored backtest run and sweep for the tests that walk every route (the role × route matrix, hostile
input): ids for the <run_id> and <sweep_id> parts of the backtest pages' URLs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from webapp.backtest import runs as service
from webapp.extensions import db


def make_run_and_sweep(app, instrument_id: int) -> tuple[int, int]:
    """(run id, sweep id): a QUEUED run of EMA crossover, and a sweep of two combinations."""
    spec = service.Spec(
        "ema_crossover",
        {"fast": 5, "slow": 20},
        instrument_id,
        5,
        date(2026, 11, 2),
        date(2026, 11, 27),
        service.settings_json(
            {
                "capital": Decimal(100000),
                "product": "MIS",
                "allow_short": False,
                "sizing": "fixed",
                "sizing_value": Decimal(1),
            }
        ),
    )
    with app.app_context():
        run = service.create_run(db.session, spec, user_id=None)
        sweep, _ = service.create_sweep(db.session, spec, {"fast": [3, 5]}, user_id=None)
        db.session.commit()
        return run.id, sweep.id

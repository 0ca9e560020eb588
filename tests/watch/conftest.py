from decimal import Decimal

import pytest

from webapp.extensions import db
from webapp.instruments import live
from webapp.models import Instrument


@pytest.fixture(autouse=True)
def _fresh_closes():
    live.forget()  # the previous closes it keeps belong to another test's database
    yield
    live.forget()


def make_index(app, symbol: str = "NIFTY 50", token: int = 256265, price: str = "26186.45") -> Instrument:
    with app.app_context():
        index = Instrument(
            instrument_token=token,
            exchange_token=token // 256,
            exchange="NSE",
            tradingsymbol=symbol,
            name=symbol,
            segment="INDICES",
            tick_size=Decimal("0.05"),
            lot_size=1,
            last_price=Decimal(price),
        )
        db.session.add(index)
        db.session.commit()
        db.session.refresh(index)
        db.session.expunge(index)
        return index

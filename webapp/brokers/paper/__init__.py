"""The paper broker, the embedded default: a simulated NSE exchange (exchange.py) behind the port
(adapter.py), registered as "paper". Its book lives in the database (webapp/models/paper.py), its
prices come from the feed's quote store (webapp/marketdata/)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from webapp.brokers import register
from webapp.brokers.base import Funds
from webapp.brokers.paper.adapter import PaperBroker
from webapp.brokers.paper.exchange import DEFAULT_OPENING_CASH, PaperExchange
from webapp.marketdata.simulator import MarketSimulator
from webapp.marketdata.store import write_quotes


def ensure_account(client_code: str, cash: Decimal | None = None, *, engine=None) -> Funds:
    """Open a paper account with `cash` unless it exists (the demo seed); its funds. Needs an app
    context unless `engine` is given."""
    if engine is None:
        from webapp.extensions import db

        engine = db.engine
    return PaperExchange(engine).ensure_account(client_code, cash)


def simulate_step(simulator: MarketSimulator, exchange: PaperExchange, redis, now: datetime) -> list[str]:
    """One tick of the feed in paper mode: move the market, store and publish it, then fill what it
    reaches. Returns the ids of the orders that filled or triggered."""
    quotes = simulator.step_by_token(now)
    write_quotes(redis, quotes)
    return exchange.match_resting(quotes.values())


register(PaperBroker)

__all__ = ["DEFAULT_OPENING_CASH", "PaperBroker", "PaperExchange", "ensure_account", "simulate_step"]

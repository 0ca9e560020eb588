"""Repricing's fallback for instruments the feed has no fresh tick for: a broker's quote API.

Prices are the exchange's, whichever account asks, so one connected client per broker is enough:
the feed's client (FEED_CLIENT_ID) first, then the first enabled client with a live session at each
broker whose adapter declares a quote API, in the order the adapters declare (webapp.brokers.quote_brokers).
Each broker gets at most one quotes() call per pass for the whole batch of missing instruments,
and the next broker is asked only for what the last one did not answer.

Only the repricing job (an RQ job) calls this, never a web request. Each call is bounded: it runs
in a daemon thread joined for the broker timeout (plus a margin), so a hung broker costs the pass
that long and no more. A broker is asked at most once every ASK_EVERY_SECONDS (repricing runs every
2 s; Kite allows one quote call a second per account) and, after a failure, not again for
BACKOFF_SECONDS. Any failure is logged and leaves its instruments to pnl.py's last known price,
marked stale: this never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from webapp.brokers import quote_brokers
from webapp.brokers.base import InstrumentRef, Quote, Unavailable
from webapp.extensions import db
from webapp.models import Client
from webapp.trading.accounts import adapter_for
from webapp.vault import Vault

log = logging.getLogger(__name__)

ASK_EVERY_SECONDS = 10
BACKOFF_SECONDS = 60
ASKED_KEY = "fanout:reprice:quotes-asked:{broker}"


class BrokerQuotes:
    """A pnl.Fallback: instrument rows (id, exchange, tradingsymbol, exchange_token, instrument_token, isin)
    → {instrument id: Quote} from the brokers' quote APIs."""

    def __init__(self, config: Mapping[str, Any], vault: Vault, redis):
        self.config, self.vault, self.redis = config, vault, redis
        self.deadline = float(config.get("BROKER_TIMEOUT_SECONDS", 7)) + 0.5

    def __call__(self, rows: Sequence[Any]) -> dict[int, Quote]:
        answered: dict[int, Quote] = {}
        try:
            for client in self.clients():
                left = [row for row in rows if row.id not in answered]
                if not left:
                    break
                key = ASKED_KEY.format(broker=client.broker)
                if not self.redis.set(key, "1", nx=True, ex=ASK_EVERY_SECONDS):
                    continue  # asked lately (or failing): the last known price stands meanwhile
                try:
                    quotes = self.ask(client, left)
                except Exception as exc:  # noqa: BLE001 - whatever the broker did, the pass goes on
                    self.redis.set(key, "1", ex=BACKOFF_SECONDS)
                    log.warning(
                        "repricing: %s quotes for %d instruments failed (client %s): %s; not asked again for %d s",
                        client.broker,
                        len(left),
                        client.id,
                        getattr(exc, "message", exc),
                        BACKOFF_SECONDS,
                    )
                    continue
                for row in left:
                    quote = quotes.get(f"{row.exchange}:{row.tradingsymbol}")
                    if quote is not None:
                        answered[row.id] = quote
        except Exception:
            log.exception("repricing: the quote fallback failed")
        return answered

    def clients(self) -> list[Client]:
        """One connected client per broker with a quote API, the feed's client first."""
        chosen: dict[str, Client] = {}
        brokers = quote_brokers()
        feed_id = self.config.get("FEED_CLIENT_ID")
        if feed_id:
            feed = db.session.get(Client, int(feed_id))
            if feed is not None and feed.enabled and feed.broker in brokers and feed.session_state() == "connected":
                chosen[feed.broker] = feed
        for broker in brokers:
            if broker in chosen:
                continue
            for client in db.session.execute(
                sa.select(Client).where(Client.broker == broker, Client.enabled.is_(True)).order_by(Client.id)
            ).scalars():
                if client.session_state() == "connected":
                    chosen[broker] = client
                    break
        return list(chosen.values())

    def ask(self, client: Client, rows: Sequence[Any]) -> dict[str, Quote]:
        """One quotes() call through the client's adapter, bounded by the broker timeout."""
        adapter = adapter_for(client, self.config, self.vault)
        refs = [
            InstrumentRef(row.exchange, row.tradingsymbol, row.exchange_token, row.instrument_token, row.isin)
            for row in rows
        ]
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["quotes"] = adapter.quotes(refs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                outcome["error"] = exc
            finally:
                adapter.close()

        thread = threading.Thread(target=call, name=f"reprice-quotes-{client.broker}", daemon=True)
        thread.start()
        thread.join(self.deadline)
        if thread.is_alive():
            raise Unavailable(f"no answer in {self.deadline:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["quotes"]

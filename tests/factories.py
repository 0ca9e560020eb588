"""Small factories for tests (call inside an app context)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from webapp.extensions import db
from webapp.models import Batch, Client, Instrument, Order, User
from webapp.security import hash_password
from webapp.vault import current_vault

DEFAULT_PASSWORD = "Correct-horse-42"
_hash = None
_seq = itertools.count(1)


def _default_hash() -> str:
    global _hash
    if _hash is None:
        _hash = hash_password(DEFAULT_PASSWORD)
    return _hash


class Factory:
    """Each call commits in its own app context and returns a detached, loaded object, so no
    session outlives the call and later requests see the database as it is."""

    def __init__(self, app):
        self.app = app

    def _save(self, obj):
        db.session.add(obj)
        db.session.commit()
        db.session.refresh(obj)
        db.session.expunge(obj)
        return obj

    def user(self, *args, **kwargs) -> User:
        with self.app.app_context():
            return self._user(*args, **kwargs)

    def client(self, *args, **kwargs) -> Client:
        with self.app.app_context():
            return self._client(*args, **kwargs)

    def instrument(self, *args, **kwargs) -> Instrument:
        with self.app.app_context():
            return self._instrument(*args, **kwargs)

    def _user(
        self,
        username: str | None = None,
        role: str = "trader",
        active: bool = True,
        clients: list[Client] = (),
        password: str | None = None,
    ) -> User:
        user = User(
            username=username or f"user{next(_seq)}",
            role=role,
            active=active,
            password_hash=hash_password(password) if password else _default_hash(),
        )
        user.clients = [db.session.get(Client, c.id) for c in clients]
        return self._save(user)

    def _client(
        self,
        name: str | None = None,
        broker: str = "paper",
        code: str | None = None,
        credentials: dict | None = None,
        **fields,
    ) -> Client:
        n = next(_seq)
        client = Client(name=name or f"Client {n}", broker=broker, client_code=code or f"PA{n:04d}", **fields)
        if credentials:
            client.credentials_enc = current_vault().encrypt(credentials)
        return self._save(client)

    def _instrument(
        self,
        symbol: str = "INFY",
        token: int = 1594,
        price: str = "1548.20",
        tick: str = "0.10",
        band: str | None = "10",
    ) -> Instrument:
        instrument = Instrument(
            instrument_token=token * 256 + 1,
            exchange_token=token,
            exchange="NSE",
            tradingsymbol=symbol,
            name=symbol,
            tick_size=Decimal(tick),
            lot_size=1,
            last_price=Decimal(price),
            band_pct=Decimal(band) if band else None,
        )
        return self._save(instrument)

    def batch(
        self,
        user: User,
        clients: list[Client],
        instrument: Instrument,
        quantity: int = 1,
        status: str = "NEW",
        **fields,
    ) -> Batch:
        """A ticket's batch with one child per client (no job enqueued)."""
        from webapp.trading.tickets import new_tag

        with self.app.app_context():
            batch = Batch(
                ticket_id=f"t-{next(_seq)}",
                user_id=user.id,
                kind="ticket",
                action="BUY",
                instrument_id=instrument.id,
                product="MIS",
                order_type="MARKET",
                validity="DAY",
            )
            child = {"side": "BUY", "product": "MIS", "order_type": "MARKET", "validity": "DAY", **fields}
            for client in clients:
                batch.orders.append(
                    Order(
                        client_id=client.id,
                        instrument_id=instrument.id,
                        quantity=quantity,
                        tag=new_tag(),
                        status=status,
                        **child,
                    )
                )
            return self._save(batch)

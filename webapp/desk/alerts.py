"""What needs a trader's eye now: children in doubt or failed today, position differences found by
the position sync, broker sessions that are expired."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from webapp.brokers import sessionless_brokers
from webapp.extensions import db
from webapp.models import Client, Order
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.risk import start_of_day
from webapp.trading.sync import position_differences


@dataclass(frozen=True)
class Alert:
    level: str  # red | amber
    client: Client | None
    text: str
    link: str | None = None


MAX_ALERTS = 30  # a morning of expired sessions on a 500-client desk must not bury the page


def desk_alerts(scope, redis) -> list[Alert]:
    """Alerts over every client in scope (None: the whole desk; else client ids or a SELECT of them),
    not only the clients on the page the trader is reading."""
    from webapp.desk.summary import in_scope

    scoped = in_scope(Order.client_id, scope)
    found: list[tuple[str, int, str, str | None]] = []
    unknown = db.session.execute(
        sa.select(Order.client_id, Order.batch_id, sa.func.count())
        .where(scoped, Order.status == states.UNKNOWN)
        .group_by(Order.client_id, Order.batch_id)
    ).all()
    for client_id, batch_id, count in unknown:
        found.append(
            (
                "red",
                client_id,
                f"{count} order(s) in doubt: being checked at the broker",
                f"/orders/batches/{batch_id}" if batch_id else None,
            )
        )
    failed = db.session.execute(
        sa.select(Order.client_id, sa.func.count())
        .where(scoped, Order.status.in_((states.FAILED, states.REJECTED)), Order.created_at >= start_of_day())
        .group_by(Order.client_id)
    ).all()
    for client_id, count in failed:
        found.append(("amber", client_id, f"{count} order(s) failed or rejected today", f"/orders/?client={client_id}"))
    ids = list(db.session.execute(sa.select(Client.id).where(in_scope(Client.id, scope))).scalars())
    for client_id, diffs in (position_differences(redis, ids) if redis is not None else {}).items():
        text = "; ".join(f"{d['instrument']} {d['product']}: desk {d['desk']}, broker {d['broker']}" for d in diffs[:3])
        found.append(("red", client_id, f"Positions differ from the broker — {text}", f"/clients/{client_id}"))
    # Client.session_state() == "expired", in SQL: a live broker whose stored session has run out
    expired = db.session.execute(
        sa.select(Client.id)
        .where(
            in_scope(Client.id, scope),
            Client.enabled.is_(True),
            Client.broker.not_in(sessionless_brokers()),
            Client.session_enc.is_not(None),
            Client.session_expires_at.is_not(None),
            Client.session_expires_at <= utcnow(),
        )
        .order_by(Client.name)
    ).scalars()
    for client_id in expired:
        found.append(("amber", client_id, "Broker session expired: reconnect before trading", f"/clients/{client_id}"))
    shown = found[:MAX_ALERTS]
    by_id = {
        c.id: c
        for c in db.session.execute(
            sa.select(Client).where(Client.id.in_({client_id for _, client_id, _, _ in shown}))
        ).scalars()
    }
    alerts = [Alert(level, by_id.get(client_id), text, link) for level, client_id, text, link in shown]
    if len(found) > MAX_ALERTS:
        alerts.append(Alert("amber", None, f"{len(found) - MAX_ALERTS} more alert(s) not shown", None))
    return alerts

"""What needs a trader's eye now: children in doubt or failed today, position differences found by
the position sync, broker sessions that are expired."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Client, Order
from webapp.trading import states
from webapp.trading.risk import start_of_day
from webapp.trading.sync import position_differences


@dataclass(frozen=True)
class Alert:
    level: str  # red | amber
    client: Client | None
    text: str
    link: str | None = None


def desk_alerts(clients: list[Client], redis) -> list[Alert]:
    ids = [c.id for c in clients]
    by_id = {c.id: c for c in clients}
    alerts = []
    unknown = db.session.execute(sa.select(Order.client_id, Order.batch_id, sa.func.count()).where(
        Order.client_id.in_(ids), Order.status == states.UNKNOWN).group_by(Order.client_id, Order.batch_id)).all()
    for client_id, batch_id, count in unknown:
        alerts.append(Alert("red", by_id[client_id], f"{count} order(s) in doubt: being checked at the broker",
                            f"/orders/batches/{batch_id}" if batch_id else None))
    failed = db.session.execute(sa.select(Order.client_id, sa.func.count()).where(
        Order.client_id.in_(ids), Order.status.in_((states.FAILED, states.REJECTED)),
        Order.created_at >= start_of_day()).group_by(Order.client_id)).all()
    for client_id, count in failed:
        alerts.append(Alert("amber", by_id[client_id], f"{count} order(s) failed or rejected today",
                            f"/orders/?client={client_id}"))
    for client_id, diffs in position_differences(redis, ids).items():
        text = "; ".join(f"{d['instrument']} {d['product']}: desk {d['desk']}, broker {d['broker']}" for d in diffs[:3])
        alerts.append(Alert("red", by_id[client_id], f"Positions differ from the broker — {text}", f"/clients/{client_id}"))
    for client in clients:
        if client.enabled and client.session_state() == "expired":
            alerts.append(Alert("amber", client, "Broker session expired: reconnect before trading",
                                f"/clients/{client.id}"))
    return alerts

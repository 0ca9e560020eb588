"""Children that will not be sent without a person choosing it (DESIGN §10: no late surprises).

A child still NEW a set time after the trader submitted it (`SEND_DEADLINE_SECONDS`, counted from
its `created_at`: the ticket's one transaction) is no longer sent automatically: a market order
placed a minute late, after a worker died or Redis was away, is a surprise nobody asked for. Nor is
a child whose send job could not be queued. Both end FAILED here, with a reason that says so, and
the batch page's retry sends them again as new children (with a fresh deadline) if still wanted.

The UPDATE is conditional on NEW, as the engine's claim (NEW → SUBMITTING) is: of the two, exactly
one wins, so a child is either sent or failed, never both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from webapp.events import publish_many
from webapp.extensions import db
from webapp.models import Order
from webapp.models.base import in_ids
from webapp.timeutil import utcnow
from webapp.trading import states

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_SECONDS = 30
NOT_SENT_IN_TIME = "not sent in time — retry if still wanted"
NOT_QUEUED = "not queued — retry if still wanted"


def send_deadline(config: Mapping[str, Any]) -> timedelta:
    return timedelta(seconds=int(config.get("SEND_DEADLINE_SECONDS") or DEFAULT_DEADLINE_SECONDS))


def late_before(config: Mapping[str, Any], now: datetime | None = None) -> datetime:
    """Children created before this are past their deadline at `now`."""
    return (now or utcnow()) - send_deadline(config)


def fail_unsent(
    reason: str,
    *,
    redis=None,
    order_ids: Iterable[int] | None = None,
    batch_id: int | None = None,
    created_before: datetime | None = None,
) -> list[int]:
    """FAILED with `reason`, for the children still NEW among these (ids, or a batch's, or all of
    them), only those created before `created_before` when given. Commits; returns the ids failed.
    Events go out on `redis` when given (best effort: without Redis the page shows it on its own)."""
    table, now = Order.__table__, utcnow()
    query = states.guarded_update(table, states.FAILED, from_states=[states.NEW])
    if order_ids is not None:
        query = query.where(in_ids(table.c.id, list(order_ids)))
    if batch_id is not None:
        query = query.where(table.c.batch_id == batch_id)
    if created_before is not None:
        query = query.where(table.c.created_at < created_before)
    rows = db.session.execute(
        query.values(reason=reason, updated_at=now).returning(table.c.id, table.c.batch_id, table.c.client_id)
    ).all()
    db.session.commit()
    for row in rows:
        log.info(
            "op=child order=%s batch=%s client=%s status=FAILED broker_order_id=None reason=%r",
            row.id,
            row.batch_id,
            row.client_id,
            reason,
        )
    if redis is not None and rows:
        publish_many(
            redis,
            [
                (
                    "order.updated",
                    {"order_id": r.id, "batch_id": r.batch_id, "client_id": r.client_id, "status": states.FAILED},
                )
                for r in rows
            ],
        )
    return [row.id for row in rows]


def expire_late(config: Mapping[str, Any], redis=None, now: datetime | None = None) -> list[int]:
    """Every NEW child past its deadline → FAILED (the reconcile cron)."""
    return fail_unsent(NOT_SENT_IN_TIME, redis=redis, created_before=late_before(config, now))


def is_late(created_at: datetime, config: Mapping[str, Any], now: datetime | None = None) -> bool:
    return created_at < late_before(config, now)

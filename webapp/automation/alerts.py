"""The one way an automatic act tells people: a RiskAlert row (the line a trader sees), an audit event
naming the system as the actor, and a `risk.alert` event for the pages' sockets. Written in the
caller's transaction, so the alert exists exactly when the act it reports does."""

from __future__ import annotations

from webapp import audit
from webapp.events import publish
from webapp.extensions import db
from webapp.models import RiskAlert

LEVELS = ("red", "amber", "info")


def raise_alert(
    kind: str,
    message: str,
    *,
    level: str = "amber",
    client_id: int | None = None,
    deployment_id: int | None = None,
    batch_id: int | None = None,
    detail: dict | None = None,
) -> RiskAlert:
    """Add the alert and its audit event to the session (the caller commits, then calls announce)."""
    if level not in LEVELS:
        raise ValueError(f"unknown alert level {level!r}")
    alert = RiskAlert(
        kind=kind,
        level=level,
        message=message[:400],
        client_id=client_id,
        deployment_id=deployment_id,
        batch_id=batch_id,
    )
    db.session.add(alert)
    target = f"client:{client_id}" if client_id else f"deployment:{deployment_id}" if deployment_id else "desk"
    audit.record(
        kind,
        target=target,
        clients=[client_id] if client_id else (),
        detail={"message": message, **(detail or {}), **({"batch": batch_id} if batch_id else {})},
    )
    return alert


def announce(redis, alert: RiskAlert) -> None:
    """After the commit: tell the pages (a lost event is a page refreshed later)."""
    publish(
        redis,
        "risk.alert",
        alert=alert.id,
        kind=alert.kind,
        level=alert.level,
        client=alert.client_id,
        deployment=alert.deployment_id,
        message=alert.message,
    )

"""Broker sessions: the daily login of each client account, stored encrypted, expired on schedule.

The browser part of a login (redirect or form) happens in the web process; the exchange of what
comes back for a session token is broker I/O, so it runs in an RQ job (`jobs.brokers.connect`).
Its progress is a small Redis record the client page polls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import redis as redis_lib
import sqlalchemy as sa

from webapp import audit
from webapp.brokers.base import BrokerError, BrokerSession
from webapp.extensions import db
from webapp.models import Client
from webapp.timeutil import utcnow
from webapp.trading.accounts import adapter_for
from webapp.vault import Vault

log = logging.getLogger(__name__)

STATUS_TTL = 600  # seconds a login's outcome stays readable


def status_key(client_id: int) -> str:
    return f"fanout:login:{client_id}"


def set_login_status(redis: redis_lib.Redis, client_id: int, state: str, message: str = "") -> None:
    redis.set(status_key(client_id), json.dumps({"state": state, "message": message}), ex=STATUS_TTL)


def login_status(redis: redis_lib.Redis, client_id: int) -> dict[str, str] | None:
    raw = redis.get(status_key(client_id)) if redis is not None else None  # None: Redis away, status unknown
    return json.loads(raw) if raw else None


def store_session(client: Client, session: BrokerSession, vault: Vault) -> None:
    client.session_enc = vault.encrypt(
        {
            "access_token": session.access_token,
            "expires_at": session.expires_at.isoformat() if session.expires_at else None,
            "extra": dict(session.extra),
        }
    )
    client.session_expires_at = session.expires_at


def connect(
    client_id: int,
    params: Mapping[str, Any],
    *,
    actor_id: int | None,
    actor: str,
    config: Mapping[str, Any],
    vault: Vault,
    redis: redis_lib.Redis,
) -> bool:
    """Exchange login params for a session and store it. Returns True when connected."""
    client = db.session.get(Client, client_id)
    if client is None:
        return False
    adapter = adapter_for(client, config, vault)
    try:
        session = adapter.complete_login(params)
    except BrokerError as exc:
        log.info("op=broker_login client=%s broker=%s result=failed reason=%r", client.id, client.broker, exc.message)
        audit.record(
            "broker.login",
            actor_id=actor_id,
            actor=actor,
            target=f"client:{client.id}",
            clients=[client.id],
            result="failed",
            detail={"broker": client.broker, "reason": exc.message},
        )
        db.session.commit()
        set_login_status(redis, client.id, "failed", exc.message)
        return False
    finally:
        adapter.close()
    store_session(client, session, vault)
    audit.record(
        "broker.login",
        actor_id=actor_id,
        actor=actor,
        target=f"client:{client.id}",
        clients=[client.id],
        detail={"broker": client.broker, "expires_at": session.expires_at},
    )
    db.session.commit()
    log.info("op=broker_login client=%s broker=%s result=connected", client.id, client.broker)
    set_login_status(redis, client.id, "connected")
    return True


def expire_sessions(now=None) -> list[int]:
    """Clear every stored session past its broker's daily expiry; returns the client ids."""
    now = now or utcnow()
    stale = (
        db.session.execute(sa.select(Client).where(Client.session_expires_at <= now, Client.session_enc.is_not(None)))
        .scalars()
        .all()
    )
    for client in stale:
        client.session_enc = None
        audit.record(
            "broker.session_expired",
            target=f"client:{client.id}",
            clients=[client.id],
            detail={"broker": client.broker, "expired_at": client.session_expires_at},
        )
    db.session.commit()
    return [c.id for c in stale]

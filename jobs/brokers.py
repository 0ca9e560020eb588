"""Broker session jobs: finish a client's login; expire sessions on each broker's daily schedule."""

from __future__ import annotations

from flask import current_app

from jobs.context import app_job
from webapp.extensions import get_redis
from webapp.trading import sessions
from webapp.vault import current_vault


@app_job
def connect(client_id: int, sealed_params: str, actor_id: int | None, actor: str) -> bool:
    """`sealed_params` is the login's answer (request token, or password + TOTP) encrypted with the
    vault, so no secret sits in Redis in the clear."""
    vault = current_vault()
    return sessions.connect(
        client_id,
        vault.decrypt(sealed_params),
        actor_id=actor_id,
        actor=actor,
        config=current_app.config,
        vault=vault,
        redis=get_redis(),
    )


@app_job
def expire_sessions() -> list[int]:
    return sessions.expire_sessions()

"""What the order jobs need besides the database: settings, secrets, Redis. One builder for it,
used by the jobs and the tests alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib
from flask import Flask, current_app

from webapp.extensions import get_redis
from webapp.trading.ratelimit import OrderThrottle
from webapp.vault import Vault, current_vault


@dataclass
class Context:
    """What a send needs besides the database: settings, secrets, Redis."""

    app: Flask
    config: Mapping[str, Any]
    vault: Vault
    redis: redis_lib.Redis
    holder: str = ""  # the RQ worker sending (named in the child locks it takes), "" outside a worker
    throttle: OrderThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = OrderThrottle(self.redis)  # one registered script for every child of the batch


def build_context(app: Flask | None = None, holder: str = "") -> Context:
    """The Context of this app (the current one by default), inside its app context. `holder`: the
    RQ worker the job runs in, named in the child locks it takes."""
    app = app or current_app._get_current_object()
    return Context(app=app, config=app.config, vault=current_vault(), redis=get_redis(), holder=holder)

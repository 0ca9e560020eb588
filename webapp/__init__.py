"""Fanout: the Flask app factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp.config import INSTANCE, ROOT, Config


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `overrides` (tests) replaces settings read from the environment."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static", instance_path=str(INSTANCE))
    config = Config.from_env()
    app.config.from_mapping(config.as_mapping())
    if overrides:
        app.config.update(overrides)
    _check_config(app)
    from webapp.marketdata.intervals import use_session

    use_session(app.config["STRATEGY_SESSION"])  # process-wide, like logging: every role builds its app here
    level = os.environ.get("LOG_LEVEL", "INFO").strip().upper()  # as jobs/settings.py for the rq processes
    level = level if level in logging.getLevelNamesMapping() else "INFO"
    logging.basicConfig(level=level, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")

    from webapp import cli, errors, extensions, htmx, inputs, security, templating

    extensions.db.init_app(app)
    extensions.migrate.init_app(app, extensions.db, directory=str(ROOT / "migrations"))
    extensions.csrf.init_app(app)
    extensions.sock.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    # Redis away: the login throttle counts in this process's memory until Redis is back
    from webapp.redisconn import fail_fast_options

    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    if app.config["RATELIMIT_STORAGE_URI"].startswith("redis"):
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", fail_fast_options(app.config["RATELIMIT_STORAGE_URI"]))
    extensions.limiter.init_app(app)
    _init_login(app)
    _init_sqlite(app)
    htmx.init_app(app)
    security.init_app(app)
    templating.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    inputs.init_app(app)  # the bounded <int:...> converter, before any route is added
    _register_blueprints(app)
    from webapp.brokers import import_brokers

    import_brokers()  # every adapter registered before any request or job thread asks for one
    return app


def _check_config(app: Flask) -> None:
    config = Config(**{k: app.config[k] for k in Config.__dataclass_fields__ if k in app.config})
    config.validate()
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = __import__("secrets").token_hex(32)  # demo/test only (validate() checked)
    if not app.config.get("FANOUT_ENCRYPTION_KEYS"):
        from webapp.vault import generate_key

        app.config["FANOUT_ENCRYPTION_KEYS"] = [generate_key()]
    if isinstance(app.config["FANOUT_ENCRYPTION_KEYS"], str):
        app.config["FANOUT_ENCRYPTION_KEYS"] = [
            k.strip() for k in app.config["FANOUT_ENCRYPTION_KEYS"].split(",") if k.strip()
        ]
    if not app.config.get("FANOUT_AUDIT_KEYS"):
        from webapp.audit import derived_key

        # demo/test only (validate() checked): every process of one desk shares SECRET_KEY, so all sign alike
        app.config["FANOUT_AUDIT_KEYS"] = [derived_key(app.config["SECRET_KEY"])]
    if isinstance(app.config["FANOUT_AUDIT_KEYS"], str):
        app.config["FANOUT_AUDIT_KEYS"] = [k.strip() for k in app.config["FANOUT_AUDIT_KEYS"].split(",") if k.strip()]


def _init_login(app: Flask) -> None:
    from webapp.extensions import login_manager

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    from webapp.auth import sessions

    login_manager.user_loader(sessions.load_user)  # "id:version": a bumped version ends the session
    sessions.init_app(app)

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash, redirect, request, url_for

        from webapp.htmx import hx_redirect, is_htmx

        target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        if is_htmx():
            return hx_redirect(target)  # never swap the login page into a fragment
        flash(login_manager.login_message, "info")
        return redirect(target)


def _init_sqlite(app: Flask) -> None:
    """SQLite is shared by the web, worker and cron processes: WAL and a busy timeout."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    from webapp.extensions import db

    with app.app_context():
        engine = db.engine

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()


def _register_blueprints(app: Flask) -> None:
    from webapp.admin import bp as admin_bp
    from webapp.api import bp as api_bp
    from webapp.auth import bp as auth_bp
    from webapp.backtests import bp as backtests_bp
    from webapp.clients import bp as clients_bp
    from webapp.deployments import bp as deployments_bp
    from webapp.desk import bp as desk_bp
    from webapp.exits import bp as exits_bp
    from webapp.feed import bp as feed_bp
    from webapp.health import bp as health_bp
    from webapp.health.metrics import bp as metrics_bp
    from webapp.hooks import bp as hooks_bp
    from webapp.instruments import bp as instruments_bp
    from webapp.notify import bp as notify_bp
    from webapp.orders import bp as orders_bp
    from webapp.risk import bp as risk_bp
    from webapp.stops import bp as stops_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(desk_bp)
    app.register_blueprint(clients_bp, url_prefix="/clients")
    app.register_blueprint(instruments_bp, url_prefix="/instruments")
    app.register_blueprint(orders_bp, url_prefix="/orders")
    app.register_blueprint(exits_bp, url_prefix="/exits")
    app.register_blueprint(stops_bp, url_prefix="/stops")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(health_bp, url_prefix="/health")
    app.register_blueprint(metrics_bp)  # /metrics
    app.register_blueprint(feed_bp)
    app.register_blueprint(risk_bp)
    app.register_blueprint(backtests_bp, url_prefix="/backtests")
    app.register_blueprint(deployments_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(notify_bp)

"""Health: /health (process up), /live, /ready (DB, Redis, and a live process of every role), /detailed (admin),
/page (the admins' readable health page, its panel refreshed by htmx polling)."""

from __future__ import annotations

from flask import current_app, jsonify, render_template

from webapp.health import bp
from webapp.health.checks import check_database, check_redis, detailed_status, role_processes
from webapp.health.roles import missing_roles
from webapp.permissions import public, requires


@bp.route("")
@public
def health():
    return jsonify(status="ok")


@bp.route("/live")
@public
def live():
    return jsonify(status="ok")


@bp.route("/ready")
@public
def ready():
    """503 "unavailable" when the database or Redis fails; 503 "degraded", naming the roles, when
    orders, worker, cron or feed has no live process (orders would not be sent, or prices stop)."""
    checks = {"database": check_database(), "redis": check_redis()}
    failed = sorted(name for name, result in checks.items() if result != "ok")
    body = {"status": "ok" if not failed else "unavailable", "checks": checks, "failed": failed}
    if "redis" not in failed and (roles := role_processes()) is not None:
        body["roles"] = {role: len(processes) for role, processes in roles.items()}
        body["degraded"] = missing_roles(roles)
        if body["degraded"] and not failed:
            body["status"] = "degraded"
    return jsonify(body), 200 if body["status"] == "ok" else 503


@bp.route("/detailed")
@requires("health.detailed")
def detailed():
    return jsonify(detailed_status())


@bp.route("/page")
@requires("health.detailed")
def page():
    return render_template("health/page.html", **health_view())


@bp.route("/page/panel")
@requires("health.detailed")
def panel():
    return render_template("health/_panel.html", **health_view())


def health_view() -> dict:
    """What the page shows; a Redis that does not answer leaves the database's parts standing."""
    from webapp.extensions import get_redis, get_rq_redis
    from webapp.health import overview
    from webapp.timeutil import age_text, utcnow

    view: dict = {"now": utcnow(), "age_text": age_text, "database": check_database(), "redis": check_redis()}
    view["sessions"] = overview.broker_sessions() if view["database"] == "ok" else None
    if view["redis"] == "ok":
        try:
            redis, rq_redis = get_redis(), get_rq_redis()
            overview.report_sockets(redis, overview.hub_sockets(current_app))  # this process's, fresh
            view.update(
                roles=overview.roles(redis, rq_redis),
                queues=overview.queues(rq_redis),
                workers=overview.workers(rq_redis),
                feed=overview.feed(redis, current_app.config.get("FEED_SOURCE", "")),
                sockets=overview.open_sockets(redis),
                failures=overview.recent_failures(rq_redis),
            )
        except Exception as exc:  # noqa: BLE001  (Redis went away mid-read)
            view["redis"] = f"error: {type(exc).__name__}"
    return view

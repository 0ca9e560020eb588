"""Health: /health (process up), /live, /ready (DB, Redis, and a live process of every role), /detailed (admin)."""

from __future__ import annotations

from flask import jsonify

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

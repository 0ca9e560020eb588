"""Health: /health (process up), /live, /ready (DB and Redis), /detailed (admin)."""
from __future__ import annotations

from flask import jsonify

from webapp.health import bp
from webapp.health.checks import check_database, check_redis, detailed_status
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
    checks = {"database": check_database(), "redis": check_redis()}
    failed = sorted(name for name, result in checks.items() if result != "ok")
    body = {"status": "ok" if not failed else "unavailable", "checks": checks, "failed": failed}
    return jsonify(body), 200 if not failed else 503


@bp.route("/detailed")
@requires("health.detailed")
def detailed():
    return jsonify(detailed_status())

from flask import Blueprint, current_app

bp = Blueprint("health", __name__)


@bp.before_app_request
def _count_sockets() -> None:
    """Each web process reports its open sockets for /metrics (webapp/health/overview.py)."""
    if not current_app.testing:
        from webapp.health.overview import start_socket_reporter

        start_socket_reporter(current_app._get_current_object())


from webapp.health import routes  # noqa: E402,F401  (routes attach to bp)

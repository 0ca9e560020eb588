from flask import render_template
from flask_login import current_user

from webapp.access import accessible_client_ids
from webapp.desk import bp
from webapp.desk.summary import desk_view
from webapp.permissions import requires
from webapp.trading.risk import desk_killed


def _view():
    return desk_view(None if current_user.role == "admin" else sorted(accessible_client_ids(current_user)))


@bp.route("/")
@requires("desk.view")
def index():
    from webapp.desk.alerts import desk_alerts
    from webapp.extensions import get_redis

    view = _view()
    return render_template("desk/index.html", rows=view.rows, totals=view.totals, desk_killed=desk_killed(),
                           alerts=desk_alerts([r.client for r in view.rows], get_redis()))


@bp.route("/desk/live")
@requires("desk.view")
def live():
    """The same fragments the WebSocket pushes, for the polling fallback when the socket is down."""
    view = _view()
    return render_template("desk/_live.html", rows=view.rows, totals=view.totals, oob=True)

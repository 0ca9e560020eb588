from flask import render_template
from flask_login import current_user

from webapp.access import accessible_clients
from webapp.desk import bp
from webapp.permissions import requires


@bp.route("/")
@requires("desk.view")
def index():
    from webapp.trading.risk import desk_killed

    return render_template("desk/index.html", clients=accessible_clients(current_user), desk_killed=desk_killed())

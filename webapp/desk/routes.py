from flask import render_template
from flask_login import current_user

from webapp.access import accessible_clients
from webapp.desk import bp
from webapp.desk.summary import client_summaries
from webapp.permissions import requires
from webapp.trading.risk import desk_killed


@bp.route("/")
@requires("desk.view")
def index():
    clients = accessible_clients(current_user)
    return render_template("desk/index.html", clients=clients, summary=client_summaries([c.id for c in clients]),
                           desk_killed=desk_killed())

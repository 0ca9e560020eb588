from flask import render_template
from flask_login import current_user

from webapp.access import accessible_clients, client_for
from webapp.brokers import broker_class
from webapp.clients import bp
from webapp.permissions import requires


@bp.route("/")
@requires("desk.view")
def index():
    return render_template("clients/index.html", clients=accessible_clients(current_user))


@bp.route("/<int:client_id>")
@requires("desk.view")
def detail(client_id: int):
    client = client_for(current_user, client_id)
    return render_template("clients/detail.html", client=client, broker=broker_class(client.broker))

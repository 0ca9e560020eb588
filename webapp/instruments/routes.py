from flask import abort, render_template, request

from webapp.extensions import db
from webapp.htmx import render_page_or_partial
from webapp.instruments import bp
from webapp.instruments.master import search
from webapp.models import Instrument
from webapp.permissions import requires


@bp.route("/")
@requires("desk.view")
def index():
    q = request.args.get("q", "")[:64]
    return render_page_or_partial("instruments/index.html", "instruments/_results.html",
                                  q=q, results=search(q) if q else [])


@bp.route("/<int:instrument_id>")
@requires("desk.view")
def detail(instrument_id: int):
    instrument = db.session.get(Instrument, instrument_id) or abort(404)
    return render_template("instruments/detail.html", instrument=instrument, limits=instrument.circuit_limits())

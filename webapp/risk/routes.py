"""The desk's risk: its settings (admins) and the risk alerts every automatic act raised."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.access import client_scope
from webapp.automation import breakers
from webapp.automation.dayend import DEFAULT_SQUAREOFF
from webapp.extensions import db
from webapp.htmx import is_htmx
from webapp.models import DeskState
from webapp.permissions import requires
from webapp.risk import bp
from webapp.risk.forms import DeskRiskForm


@bp.route("/risk/settings", methods=["GET", "POST"])
@requires("desk.risk")
def settings():
    state = db.session.get(DeskState, 1) or DeskState(id=1)  # shown; the row is made when saved
    form = DeskRiskForm()
    if request.method == "GET":
        form.max_daily_loss.data = state.max_daily_loss
        form.squareoff_time.data = f"{(state.squareoff_time or DEFAULT_SQUAREOFF):%H:%M}"
    if form.validate_on_submit():
        breakers.save_desk_settings(
            current_user,
            max_daily_loss=form.max_daily_loss.data,
            squareoff_time=form.squareoff(),
            ip=request.remote_addr,
        )
        db.session.commit()
        flash("Desk risk settings saved.", "success")
        return redirect(url_for("risk.settings"))
    return render_template("risk/settings.html", form=form, state=state, default=DEFAULT_SQUAREOFF)


@bp.route("/risk/alerts")
@requires("desk.view")
def alerts():
    rows = breakers.recent_alerts(client_scope(current_user), limit=200)
    if is_htmx():
        return render_template("risk/_alerts.html", risk_alerts=rows)
    return render_template("risk/alerts.html", risk_alerts=rows)

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.access import accessible_clients
from webapp.extensions import db, page_redis
from webapp.htmx import render_page_or_partial
from webapp.instruments import bp
from webapp.instruments.master import search
from webapp.marketdata.candles import chart_series
from webapp.marketdata.store import read_quote, read_quotes
from webapp.marketfeed.feed import note_interest
from webapp.models import Instrument, WatchlistItem
from webapp.permissions import requires
from webapp.security import safe_next
from webapp.trading.exits import holders


@bp.route("/")
@requires("desk.view")
def index():
    q = request.args.get("q", "")[:64]
    return render_page_or_partial(
        "instruments/index.html", "instruments/_results.html", q=q, results=search(q) if q else []
    )


def _instrument(instrument_id: int) -> Instrument:
    return db.session.get(Instrument, instrument_id) or abort(404)


@bp.route("/<int:instrument_id>")
@requires("desk.view")
def detail(instrument_id: int):
    instrument = _instrument(instrument_id)
    redis = page_redis()
    if redis is not None:
        note_interest(redis, instrument.instrument_token)  # an open chart keeps the feed subscribed
    watched = (
        db.session.execute(
            sa.select(WatchlistItem.id).where(
                WatchlistItem.user_id == current_user.id, WatchlistItem.instrument_id == instrument.id
            )
        ).first()
        is not None
    )
    return render_template(
        "instruments/detail.html",
        instrument=instrument,
        limits=instrument.circuit_limits(),
        quote=read_quote(redis, instrument) if redis is not None else None,
        watched=watched,
        holders=holders(accessible_clients(current_user), instrument.id),
    )


@bp.route("/<int:instrument_id>/candles.json")
@requires("desk.view")
def candles(instrument_id: int):
    instrument = _instrument(instrument_id)
    redis = page_redis()
    if redis is not None:
        note_interest(redis, instrument.instrument_token)
    return {"candles": chart_series(db.session, instrument.id, instrument.instrument_token, redis)}


@bp.route("/watchlist")
@requires("desk.view")
def watchlist():
    items = (
        db.session.execute(
            sa.select(WatchlistItem).where(WatchlistItem.user_id == current_user.id).order_by(WatchlistItem.id)
        )
        .scalars()
        .all()
    )
    redis = page_redis()
    quotes = read_quotes(redis, [i.instrument.instrument_token for i in items]) if redis is not None else {}
    return render_template("instruments/watchlist.html", items=items, quotes=quotes)


@bp.route("/<int:instrument_id>/watch", methods=["POST"])
@requires("desk.view")
def watch(instrument_id: int):
    instrument = _instrument(instrument_id)
    existing = db.session.execute(
        sa.select(WatchlistItem).where(
            WatchlistItem.user_id == current_user.id, WatchlistItem.instrument_id == instrument.id
        )
    ).scalar_one_or_none()
    if existing is not None:
        db.session.delete(existing)
        flash(f"{instrument.tradingsymbol} removed from your watchlist.", "info")
    else:
        db.session.add(WatchlistItem(user_id=current_user.id, instrument_id=instrument.id))
        flash(f"{instrument.tradingsymbol} added to your watchlist.", "success")
    db.session.commit()
    return redirect(safe_next(request.form.get("next")) or url_for("instruments.detail", instrument_id=instrument.id))

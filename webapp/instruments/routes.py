from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from webapp.access import accessible_clients
from webapp.extensions import db, page_redis
from webapp.htmx import is_htmx, render_page_or_partial
from webapp.inputs import record_id
from webapp.instruments import bp, watch
from webapp.instruments.master import search
from webapp.marketdata.candles import chart_series
from webapp.marketdata.store import read_quote, read_quotes
from webapp.marketfeed.feed import note_interest
from webapp.models import Instrument
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
    list_no = chosen_list()
    watched = watch.find(current_user.id, list_no, instrument.id) is not None
    return render_template(
        "instruments/detail.html",
        instrument=instrument,
        limits=instrument.circuit_limits(),
        quote=read_quote(redis, instrument) if redis is not None else None,
        watched=watched,
        list_no=list_no,
        is_index=watch.is_index(instrument),
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
    """The full-page view of one market-watch list (the column beside every page shows the same list)."""
    list_no = watch.list_number(request.args.get("list"), chosen_list())
    items = watch.items(current_user.id, list_no)
    redis = page_redis()
    quotes = read_quotes(redis, [i.instrument.instrument_token for i in items]) if redis is not None else {}
    rows = [(i, watch.move_of(i.instrument, quotes.get(i.instrument.instrument_token))) for i in items]
    return render_template(
        "instruments/watchlist.html", rows=rows, list_no=list_no, counts=watch.counts(current_user.id), lists=LIST_NOS
    )


@bp.route("/<int:instrument_id>/watch", methods=["POST"], endpoint="watch")
@requires("desk.view")
def watch_toggle(instrument_id: int):
    """The instrument page's Watch / Unwatch: on or off the list the market watch shows."""
    instrument = _instrument(instrument_id)
    list_no = chosen_list()
    if watch.remove(current_user.id, list_no, instrument.id):
        flash(f"{instrument.tradingsymbol} removed from list {list_no}.", "info")
    else:
        try:
            watch.add(current_user.id, list_no, instrument)
            flash(f"{instrument.tradingsymbol} added to list {list_no}.", "success")
        except watch.WatchError as exc:
            flash(str(exc), "error")
    return redirect(safe_next(request.form.get("next")) or url_for("instruments.detail", instrument_id=instrument.id))


# ---- the market watch beside every page (templates/watch/) ----

LIST_NOS = range(1, watch.LISTS + 1)
SESSION_LIST = "watch_list"
SEARCH_RESULTS = 12


def chosen_list() -> int:
    """The list the market watch shows: the last one this login session chose (1 at first)."""
    return watch.list_number(str(session.get(SESSION_LIST, 1)))


def market_watch(list_no: int | None = None, error: str | None = None) -> dict:
    """Everything the page chrome shows: the chosen list's rows with their moves, the header's index
    tickers, and the tokens the chrome socket follows (both)."""
    list_no = list_no or chosen_list()
    items = watch.items(current_user.id, list_no)
    indices = watch.header_indices()
    tokens = list(dict.fromkeys([i.instrument.instrument_token for i in items] + [i.instrument_token for i in indices]))
    redis = page_redis()
    quotes = read_quotes(redis, tokens) if redis is not None else {}
    return {
        "list_no": list_no,
        "lists": LIST_NOS,
        "per_list": watch.PER_LIST,
        "counts": watch.counts(current_user.id),
        "rows": [(i, watch.move_of(i.instrument, quotes.get(i.instrument.instrument_token))) for i in items],
        "indices": [(i, watch.move_of(i, quotes.get(i.instrument_token))) for i in indices],
        "tokens": ",".join(str(t) for t in tokens),
        # the trader's choice ("collapsed" / "open"); none: open from 1280 px wide, collapsed below (CSS)
        "collapsed": chosen if (chosen := request.cookies.get("fanout-mw")) in ("collapsed", "open") else "",
        "error": error,
        "is_index": watch.is_index,
    }


@bp.app_context_processor
def _chrome():
    return {"market_watch": market_watch}  # called by base.html for a signed-in page only


def _market_watch_partial(list_no: int, error: str | None = None, status: int = 200):
    return render_template("watch/_market_watch.html", mw=market_watch(list_no, error)), status


@bp.route("/watch")
@requires("desk.view")
def market_watch_list():
    """One list in the market watch (its tabs 1..5); the choice is remembered for the next pages."""
    list_no = watch.list_number(request.args.get("list"), chosen_list())
    session[SESSION_LIST] = list_no
    if not is_htmx():
        return redirect(url_for("instruments.watchlist", list=list_no))
    return _market_watch_partial(list_no)


@bp.route("/watch/search")
@requires("desk.view")
def market_watch_search():
    """The market watch's search box (`find`: not `q`, which the page beside it may use): instruments to
    add to the list it shows."""
    q = request.args.get("find", "")[:64]
    list_no = watch.list_number(request.args.get("list"), chosen_list())
    on_list = {i.instrument_id for i in watch.items(current_user.id, list_no)}
    return render_template(
        "watch/_search.html",
        q=q,
        list_no=list_no,
        results=search(q, limit=SEARCH_RESULTS) if q.strip() else [],
        on_list=on_list,
    )


def _watch_form() -> tuple[int, Instrument | None]:
    list_no = watch.list_number(request.form.get("list"), 0)
    instrument_id = record_id(request.form.get("instrument_id"))
    instrument = db.session.get(Instrument, instrument_id) if instrument_id else None
    return list_no, instrument


def _after_change(list_no: int, error: str | None, message: str):
    """htmx: the market watch again (GET after POST, so a refresh never repeats the change); a plain
    form: back to the full-page list with the message."""
    if is_htmx():
        if error:
            return _market_watch_partial(list_no or chosen_list(), error, 422)
        return redirect(url_for("instruments.market_watch_list", list=list_no), 303)
    flash(error or message, "error" if error else "success")
    return redirect(url_for("instruments.watchlist", list=list_no or None))


@bp.route("/watch/add", methods=["POST"])
@requires("desk.view")
def market_watch_add():
    list_no, instrument = _watch_form()
    if not list_no:
        return _after_change(0, f"Choose a list from 1 to {watch.LISTS}.", "")
    if instrument is None:
        return _after_change(list_no, "Choose an instrument from the search.", "")
    try:
        watch.add(current_user.id, list_no, instrument)
    except watch.WatchError as exc:
        return _after_change(list_no, str(exc), "")
    session[SESSION_LIST] = list_no
    return _after_change(list_no, None, f"{instrument.tradingsymbol} added to list {list_no}.")


@bp.route("/watch/remove", methods=["POST"])
@requires("desk.view")
def market_watch_remove():
    list_no, instrument = _watch_form()
    if not list_no:
        return _after_change(0, f"Choose a list from 1 to {watch.LISTS}.", "")
    if instrument is None or not watch.remove(current_user.id, list_no, instrument.id):
        return _after_change(list_no, "That instrument is not on this list.", "")
    return _after_change(list_no, None, f"{instrument.tradingsymbol} removed from list {list_no}.")

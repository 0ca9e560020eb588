from flask import render_template, request
from flask_login import current_user

from webapp.access import accessible_client_ids, client_scope
from webapp.automation import breakers
from webapp.desk import bp
from webapp.desk.summary import (
    PAGE_SIZE,
    SORTS,
    BadDeskQuery,
    client_rows,
    desk_page,
    desk_totals,
    parse_client_ids,
    parse_query,
)
from webapp.errors import render_error
from webapp.health.checks import role_counts
from webapp.htmx import is_htmx
from webapp.permissions import requires, user_can
from webapp.trading.risk import desk_killed


@bp.route("/")
@requires("desk.view")
def index():
    """The desk: totals and alerts over every client the user may see, and one page of the client
    table (searched and sorted on the server). An htmx request gets the table's board alone."""
    from webapp.desk.alerts import desk_alerts
    from webapp.extensions import page_redis

    try:
        query = parse_query(request.args)
    except BadDeskQuery as exc:
        return render_error(400, str(exc))
    scope = client_scope(current_user)
    page = desk_page(scope, query)
    if is_htmx():
        return render_template("desk/_board.html", page=page, sorts=SORTS, page_size=PAGE_SIZE)
    return render_template(
        "desk/index.html",
        page=page,
        totals=desk_totals(scope),
        sorts=SORTS,
        page_size=PAGE_SIZE,
        desk_killed=desk_killed(),
        desk_kill_reason=breakers.desk_kill_reason(),
        risk_alerts=breakers.recent_alerts(scope, limit=10),
        alerts=desk_alerts(scope, page_redis()),
        processes=role_counts() if user_can("health.processes") else None,
    )


@bp.route("/desk/live")
@requires("desk.view")
def live():
    """The same fragments the WebSocket pushes, for the polling fallback when the socket is down:
    the totals, and the rows of the clients the page shows (`clients=1,2,3`; none: the first page)."""
    try:
        ids = parse_client_ids(request.args.get("clients"))
    except BadDeskQuery as exc:
        return render_error(400, str(exc))
    scope = client_scope(current_user)
    rows = desk_page(scope).rows if ids is None else client_rows(ids, scope)
    return render_template("desk/_live.html", rows=rows, totals=desk_totals(scope), oob=True)


@bp.route("/desk/mtm.json")
@requires("desk.view")
def mtm_series():
    """The desk P&L chart's line: today's (IST) P&L samples of every client the user may see, summed
    (the same samples, from the same function, as each client page's chart), ending now at the day
    P&L the desk's totals show (samples are taken when a reprice moves a price: a fill's realized
    P&L since is in the totals only). Times are UTC epoch seconds; static/js/desk.js shows them in IST."""
    from webapp.desk.book import desk_mtm_series
    from webapp.extensions import page_redis
    from webapp.timeutil import IST, utcnow
    from webapp.trading.pnl import pnl_samples

    redis, now = page_redis(), utcnow()
    day = now.astimezone(IST).date().isoformat()
    ids = sorted(accessible_client_ids(current_user))
    samples = desk_mtm_series({client_id: pnl_samples(redis, client_id, day) for client_id in ids})
    at = int(now.timestamp())
    day_pnl = desk_totals(client_scope(current_user)).day_pnl
    return {"series": [s for s in samples if s["time"] < at] + [{"time": at, "value": str(day_pnl)}]}

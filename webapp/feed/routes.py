"""`/ws/feed`: the live desk over one WebSocket per page. Authenticated and Origin-checked before
the handshake; the handler thread is the socket's only writer; a snapshot on every (re)connect."""

from __future__ import annotations

import queue
from urllib.parse import urlsplit

from flask import abort, current_app, request
from flask_login import current_user

from webapp.access import accessible_client_ids, granted_scope, may_see
from webapp.desk.summary import BadDeskQuery, desk_page, parse_client_ids
from webapp.extensions import db, login_manager, sock
from webapp.feed import bp
from webapp.feed.fragments import snapshot
from webapp.feed.hub import CLOSE, get_hub
from webapp.inputs import MAX_BIGINT, InputError, record_id, whole_number
from webapp.permissions import allowed

PAGES = {"desk", "client", "batch", "instrument", "book", "watchlist", "deployment", "deployments", "chrome"}
MAX_TOKENS = 1000  # instruments one page may follow (a long watchlist)
KEEPALIVE_SECONDS = 5  # the handler wakes this often to notice a closed socket


@bp.before_request
def guard():
    """Runs before the upgrade: a refused socket is an ordinary HTTP answer."""
    view = current_app.view_functions.get(request.endpoint)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not allowed(current_user.role, getattr(view, "permission", "desk.view")):
        abort(403)
    if not _same_origin(request.headers.get("Origin"), request.scheme, request.host):
        abort(403)  # Cross-Site WebSocket Hijacking: only our own pages may open the feed
    if request.headers.get("Upgrade", "").lower() != "websocket":
        abort(400)
    try:
        parse_client_ids(request.args.get("clients"))
    except BadDeskQuery:
        abort(400)
    if request.args.get("id") and record_id(request.args["id"]) is None:
        abort(400)


def _same_origin(origin: str | None, scheme: str, host: str) -> bool:
    """Browsers always send Origin on a WebSocket handshake; it must be this site, scheme included
    (a page served over plain http on the same host must not read an https desk's feed). A Host
    without a port (some non-browser clients) is compared by hostname. Behind a TLS proxy the
    scheme is the proxy's X-Forwarded-Proto, which gunicorn trusts from its forwarded_allow_ips."""
    if not origin:
        return False
    parts = urlsplit(origin)
    if parts.scheme != scheme:
        return False
    return parts.netloc == host if ":" in host else parts.netloc.split(":")[0] == host


def _permission(name: str):
    def mark(view):
        view.permission = name
        return view

    return mark


def _tokens() -> set[int]:
    """The instrument tokens a page follows (at most MAX_TOKENS; malformed ones are dropped)."""
    parts = request.args.get("tokens", "").split(",")[:MAX_TOKENS]
    return {n for n in (record_token(p) for p in parts) if n is not None}


def record_token(raw: str) -> int | None:
    try:
        return whole_number(raw, minimum=0, maximum=MAX_BIGINT)
    except InputError:
        return None


def _shown(page: str, client_ids: frozenset[int]) -> frozenset[int]:
    """The desk rows this socket keeps live: the `clients` its page shows, or the desk's first page."""
    if page != "desk":
        return frozenset()
    ids = parse_client_ids(request.args.get("clients"))
    if ids is None:
        ids = desk_page(granted_scope(current_user.role, client_ids)).client_ids
    return frozenset(i for i in ids if may_see(current_user.role, client_ids, i))


@sock.route("/ws/feed", bp=bp)
@_permission("desk.view")
def feed(ws):
    page = request.args.get("page", "desk")
    page = page if page in PAGES else "desk"
    hub = get_hub(current_app._get_current_object())
    client_ids = frozenset(accessible_client_ids(current_user))
    subscriber = hub.register(
        user_id=current_user.id,
        role=current_user.role,
        client_ids=client_ids,
        page=page,
        target=record_id(request.args.get("id")),
        tokens=_tokens(),
        shown=_shown(page, client_ids),
        session_version=current_user.session_version,
    )
    hub.subscribed.wait(timeout=2)  # events after the snapshot must not be lost to a late subscription
    hub.recheck([subscriber])  # a session ended between the login check and the register had no socket to close
    try:
        if hub.active(subscriber):
            ws.send(snapshot(subscriber))
        db.session.remove()  # a long-lived socket must not pin a database connection
        while ws.connected and hub.active(subscriber):
            try:
                message = subscriber.queue.get(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:
                continue
            if message is not CLOSE and hub.active(subscriber):
                ws.send(message)
    finally:
        hub.unregister(subscriber)
    if subscriber.closed_because and ws.connected:
        # 1008: not a failure to retry (htmx's ws extension reconnects only after 1006/1011-1013); the
        # page falls back to its polling partials, which take an ended session to the login page
        ws.close(reason=1008, message=subscriber.closed_because)

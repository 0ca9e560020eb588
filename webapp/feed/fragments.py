"""Events → htmx out-of-band fragments, rendered with the same partials the pages use (one way to
render a row, whether it arrives by page, partial or WebSocket), for the sockets allowed to see them."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from flask import current_app, render_template

from webapp.access import granted_scope
from webapp.automation.stops import CHANGED_EVENT as STOPS_CHANGED
from webapp.deployments import live as deployment_live
from webapp.extensions import db
from webapp.feed.hub import Subscriber
from webapp.marketdata.store import decode_ticks
from webapp.models import Order
from webapp.notify.collect import EVENT as NOTIFY_CREATED
from webapp.permissions import allowed
from webapp.trading import states

Delivery = tuple[Subscriber, str]


def for_ticks(data, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """Decode only the prices some socket shows, render each one's span once per batch, then join
    them per socket (a batch carries every instrument of the desk)."""
    from webapp.instruments import live as chrome  # the page chrome's spans: their own ids, with the move

    subscribers = list(subscribers)
    wanted = set().union(*(sub.tokens for sub in subscribers))
    if not wanted:
        return []
    prices = decode_ticks(data, wanted)
    pages = [sub for sub in subscribers if sub.page != chrome.PAGE]
    ltp = _ltp_macro()
    shown = set().union(*(sub.tokens for sub in pages)) & prices.keys() if pages else set()
    rendered = {token: str(ltp(token, prices[token], True)) for token in shown}
    return [
        (sub, "".join(rendered[t] for t in sub.tokens & rendered.keys()))
        for sub in pages
        if sub.tokens & rendered.keys()
    ] + chrome.fragments(prices, subscribers)


def _ltp_macro():
    """The live price span (feed/_ltp.html, which feed/_ticks.html loops over), called directly: a
    macro call per instrument instead of a whole render_template (context processors, a new context)
    for each of hundreds a second."""
    return current_app.jinja_env.get_template("feed/_ltp.html").module.ltp


def for_event(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    kind = event.get("event")
    if kind == "order.updated":
        return _order(event, subscribers) + deployment_live.for_event(event, subscribers)
    if kind in deployment_live.EVENTS or kind == "risk.alert":  # risk.alert: a deployment's page (others: add)
        return deployment_live.for_event(event, subscribers) + (
            _risk_alerts(event, subscribers) if kind == "risk.alert" else []
        )
    if kind in ("pnl.updated", "position.updated"):
        clients = set(event.get("clients") or [event.get("client_id")])
        return _pnl(clients, subscribers)
    if kind == NOTIFY_CREATED:  # the notification's own user's page-chrome sockets: a toast and the bell
        from webapp.notify import live as notify_live

        return notify_live.for_event(event, subscribers)
    if kind == STOPS_CHANGED:  # a rule armed, edited, cancelled or fired: the client pages' position chips
        return _pnl(set(event.get("clients") or []), [s for s in subscribers if s.page == "client"])
    return []


def _order(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """The order's row to its batch's pages; its client's recent orders whole to the client's pages
    (a new order has no row there to swap). The desk shows no order rows: its counts move with P&L."""
    client_id = event.get("client_id")
    batch_pages = [
        s for s in subscribers if s.page == "batch" and s.target == event.get("batch_id") and s.can_see(client_id)
    ]
    client_pages = [s for s in subscribers if s.page == "client" and s.target == client_id and s.can_see(client_id)]
    out: list[Delivery] = []
    if batch_pages and (order := db.session.get(Order, event["order_id"])) is not None:
        from webapp.orders.batches import live_summary

        row = render_template("orders/_order_row.html", o=order, states=states, oob=True)
        html, summaries = "<template>" + row + "</template>", {}
        for s in batch_pages:  # the header and counts too, rendered once per client scope
            if (scope := _scope(s)) not in summaries:
                summaries[scope] = live_summary(order.batch_id, scope)
            out.append((s, html + summaries[scope]))
    if client_pages:
        html = "<template>" + client_orders_fragment(client_id) + "</template>"
        out += [(s, html) for s in client_pages]
    return out + _book_rows(event, subscribers)


def _book_rows(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """The order's row to the order books that may see it (a row not shown there is not added: the
    book keeps its search); its per-order actions only for roles that may place orders."""
    pages = [s for s in subscribers if s.page == "book" and s.can_see(event.get("client_id"))]
    if not pages or (order := db.session.get(Order, event["order_id"])) is None:
        return []
    rows: dict[bool, str] = {}
    for sub in pages:
        act = allowed(sub.role, "orders.place")
        if act not in rows:
            row = render_template(
                "orders/_order_row.html", o=order, columns="book", actions=act, live=True, states=states, oob=True
            )
            rows[act] = "<template>" + row + "</template>"
    return [(sub, rows[allowed(sub.role, "orders.place")]) for sub in pages]


def client_orders_fragment(client_id: int) -> str:
    from webapp.clients.book import recent_orders

    return render_template(
        "clients/_orders.html", client_id=client_id, orders=recent_orders(client_id), states=states, oob=True
    )


def _pnl(clients: set[int], subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """A desk socket gets the totals when any client it may see changed (most are on other pages),
    and the rows of the changed clients its page shows; rows and totals are computed once per batch."""
    from webapp.clients.book import client_book
    from webapp.desk.summary import client_rows, desk_totals

    out, desk_subs, client_cache = [], [], {}
    for sub in subscribers:
        visible = {c for c in clients if sub.can_see(c)}
        if sub.page == "desk" and visible:
            desk_subs.append((sub, frozenset(visible & sub.shown)))
        elif sub.page == "client" and sub.target in visible:
            if sub.target not in client_cache:
                client_cache[sub.target] = client_book(sub.target)
            out.append(
                (
                    sub,
                    render_template(
                        "clients/_live.html",
                        oob=True,
                        can_place=allowed(sub.role, "orders.place"),
                        **client_cache[sub.target],
                    ),
                )
            )
    if desk_subs:
        # every id here passed its own socket's can_see above
        rows = {r.client.id: r for r in client_rows(set().union(*(ids for _, ids in desk_subs)), None)}
        totals, rendered = {}, {}
        for sub, ids in desk_subs:
            scope = _scope(sub)
            if scope not in totals:
                totals[scope] = desk_totals(scope)
            if (scope, ids) not in rendered:
                rendered[(scope, ids)] = render_template(
                    "desk/_live.html",
                    rows=[r for r in rows.values() if r.client.id in ids],
                    totals=totals[scope],
                    oob=True,
                )
            out.append((sub, rendered[(scope, ids)]))
    return out


def _risk_alerts(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """The desk's risk alerts panel again, for the desk sockets that may see the alert's client (a
    desk-level alert: those who see every client); rendered once per scope."""
    from webapp.automation.breakers import recent_alerts

    client_id, out, rendered = event.get("client"), [], {}
    for sub in subscribers:
        scope = _scope(sub)
        if sub.page != "desk" or not (sub.can_see(client_id) if client_id is not None else scope is None):
            continue
        if scope not in rendered:
            rendered[scope] = render_template("risk/_alerts.html", risk_alerts=recent_alerts(scope, limit=10), oob=True)
        out.append((sub, rendered[scope]))
    return out


def _scope(sub: Subscriber) -> frozenset[int] | None:
    return granted_scope(sub.role, sub.client_ids)


def snapshot(sub: Subscriber) -> str:
    """What a socket gets on (re)connect: the current state of everything its page shows."""
    from webapp.marketdata.store import read_quotes

    parts = []
    if sub.page == "desk":
        from webapp.desk.summary import client_rows, desk_totals

        parts.append(
            render_template(
                "desk/_live.html", rows=client_rows(sub.shown, _scope(sub)), totals=desk_totals(_scope(sub)), oob=True
            )
        )
    elif sub.page == "client" and sub.can_see(sub.target):
        from webapp.clients.book import client_book

        parts.append(
            render_template(
                "clients/_live.html", oob=True, can_place=allowed(sub.role, "orders.place"), **client_book(sub.target)
            )
        )
        parts.append("<template>" + client_orders_fragment(sub.target) + "</template>")
    elif sub.page == "batch" and sub.target:
        query = sa.select(Order).where(Order.batch_id == sub.target)
        rows = [
            render_template("orders/_order_row.html", o=order, states=states, oob=True)
            for order in db.session.execute(query).scalars()
            if sub.can_see(order.client_id)
        ]
        parts.append("<template>" + "".join(rows) + "</template>")
        from webapp.orders.batches import live_summary

        parts.append(live_summary(sub.target, _scope(sub)))
    elif sub.page in deployment_live.PAGES:
        parts += deployment_live.snapshot(sub)
    if sub.tokens and sub.page == "chrome":
        from webapp.instruments import live as chrome

        parts.append(chrome.snapshot(sub.tokens))
    elif sub.tokens:
        from webapp.extensions import get_redis

        quotes = read_quotes(get_redis(), sub.tokens)
        if quotes:
            parts.append(render_template("feed/_ticks.html", quotes=quotes, oob=True))
    parts.append('<span id="feed-state" class="chip chip-green" hx-swap-oob="true">live</span>')
    return "".join(parts)

"""Events → htmx out-of-band fragments, rendered with the same partials the pages use (one way to
render a row, whether it arrives by page, partial or WebSocket), for the sockets allowed to see them."""
from __future__ import annotations

import json
from typing import Iterable

import sqlalchemy as sa
from flask import render_template

from webapp.extensions import db
from webapp.feed.hub import Subscriber
from webapp.marketdata.store import quote_from_dict
from webapp.models import Order
from webapp.permissions import allowed
from webapp.trading import states

Delivery = tuple[Subscriber, str]


def for_ticks(data, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    """Decode only the instruments some socket shows, render each one's fragment once per batch,
    then join them per socket (a batch carries every instrument of the desk, with depth)."""
    subscribers = list(subscribers)
    wanted = set().union(*(sub.tokens for sub in subscribers))
    if not wanted:
        return []
    quotes = {int(t["instrument_token"]): quote_from_dict(t) for t in json.loads(data)["ticks"]
              if int(t["instrument_token"]) in wanted}
    rendered = {token: render_template("feed/_ticks.html", quotes={token: q}, oob=True) for token, q in quotes.items()}
    return [(sub, "".join(rendered[t] for t in sub.tokens & rendered.keys()))
            for sub in subscribers if sub.tokens & rendered.keys()]


def for_event(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    kind = event.get("event")
    if kind == "order.updated":
        return _order(event, subscribers)
    if kind in ("pnl.updated", "position.updated"):
        clients = set(event.get("clients") or [event.get("client_id")])
        return _pnl(clients, subscribers)
    return []


def _order(event: dict, subscribers: Iterable[Subscriber]) -> list[Delivery]:
    watchers = [s for s in subscribers if s.can_see(event.get("client_id")) and (
        (s.page == "batch" and s.target == event.get("batch_id")) or
        (s.page == "client" and s.target == event.get("client_id")) or s.page == "desk")]
    if not watchers:
        return []
    order = db.session.get(Order, event["order_id"])
    if order is None:
        return []
    html = "<template>" + render_template("orders/_order_row.html", o=order, states=states, oob=True) + "</template>"
    return [(s, html) for s in watchers]


def _pnl(clients: set[int], subscribers: Iterable[Subscriber]) -> list[Delivery]:
    from webapp.desk.summary import desk_view
    from webapp.clients.book import client_book

    out, desk_cache, client_cache = [], {}, {}
    for sub in subscribers:
        visible = {c for c in clients if sub.can_see(c)}
        if sub.page == "desk" and visible:
            key = (sub.role, sub.client_ids)
            if key not in desk_cache:
                ids = sorted(sub.client_ids) if sub.role != "admin" else None
                desk_cache[key] = desk_view(ids)
            view = desk_cache[key]
            out.append((sub, render_template("desk/_live.html", rows=[r for r in view.rows if r.client.id in visible],
                                             totals=view.totals, oob=True)))
        elif sub.page == "client" and sub.target in visible:
            if sub.target not in client_cache:
                client_cache[sub.target] = client_book(sub.target)
            out.append((sub, render_template("clients/_live.html", oob=True, can_place=allowed(sub.role, "orders.place"),
                                             **client_cache[sub.target])))
    return out


def snapshot(sub: Subscriber) -> str:
    """What a socket gets on (re)connect: the current state of everything its page shows."""
    from webapp.marketdata.store import read_quotes

    parts = []
    if sub.page == "desk":
        from webapp.desk.summary import desk_view

        view = desk_view(sorted(sub.client_ids) if sub.role != "admin" else None)
        parts.append(render_template("desk/_live.html", rows=view.rows, totals=view.totals, oob=True))
    elif sub.page == "client" and sub.can_see(sub.target):
        from webapp.clients.book import client_book

        parts.append(render_template("clients/_live.html", oob=True, can_place=allowed(sub.role, "orders.place"),
                                     **client_book(sub.target)))
    elif sub.page == "batch" and sub.target:
        query = sa.select(Order).where(Order.batch_id == sub.target)
        rows = [render_template("orders/_order_row.html", o=order, states=states, oob=True)
                for order in db.session.execute(query).scalars() if sub.can_see(order.client_id)]
        parts.append("<template>" + "".join(rows) + "</template>")
    if sub.tokens:
        from webapp.extensions import get_redis

        quotes = read_quotes(get_redis(), sub.tokens)
        if quotes:
            parts.append(render_template("feed/_ticks.html", quotes=quotes, oob=True))
    parts.append('<span id="feed-state" class="chip chip-green" hx-swap-oob="true">live</span>')
    return "".join(parts)

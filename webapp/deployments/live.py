"""Deployment pages over the desk's WebSocket: `deployment.updated` (a state change, the automation
switch), `signal.created` (the runner stored a signal), `risk.alert` naming a deployment (the runner
paused it) and `order.updated` of a deployment's batch
re-render the same partials the pages poll, for the sockets allowed to see every client of it."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from flask import render_template

from webapp.automation import deployments as domain
from webapp.deployments.summary import detail, pnl, today_counts
from webapp.extensions import db, get_redis
from webapp.models import Batch, Deployment, DeploymentClient
from webapp.permissions import allowed

PAGES = ("deployment", "deployments")
EVENTS = ("deployment.updated", "signal.created")


def _client_ids(deployment_id: int) -> list[int]:
    return list(
        db.session.execute(
            sa.select(DeploymentClient.client_id).where(DeploymentClient.deployment_id == deployment_id)
        ).scalars()
    )


def _sees_all(sub, client_ids: list[int]) -> bool:
    return all(sub.can_see(c) for c in client_ids)


def for_event(event: dict, subscribers: Iterable) -> list[tuple]:
    subs = [s for s in subscribers if s.page in PAGES]
    if not subs:
        return []
    kind = event.get("event")
    if kind == "order.updated":
        batch = db.session.get(Batch, event.get("batch_id")) if isinstance(event.get("batch_id"), int) else None
        if batch is None or batch.deployment_id is None:
            return []
        targets = {batch.deployment_id}
    elif kind == "risk.alert":  # the runner paused a deployment (or another automatic act named one)
        if not isinstance(event.get("deployment"), int):
            return []
        targets = {event["deployment"]}
    elif kind in EVENTS and event.get("deployment") is None:  # the automation switch: every deployment page
        targets = {s.target for s in subs if s.page == "deployment" and s.target}
    elif kind in EVENTS and isinstance(event.get("deployment"), int):
        targets = {event["deployment"]}
    else:
        return []
    out = []
    for deployment_id in targets:
        out += _detail_for(deployment_id, [s for s in subs if s.page == "deployment" and s.target == deployment_id])
    if kind != "order.updated":
        out += _list_for([s for s in subs if s.page == "deployments"])
    return out


def _detail_for(deployment_id: int, subs: list) -> list[tuple]:
    if not subs:
        return []
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        return []
    clients = _client_ids(deployment_id)
    subs = [s for s in subs if _sees_all(s, clients)]
    if not subs:
        return []
    context = detail(deployment, get_redis())
    off = domain.automation_off()
    rendered: dict[bool, str] = {}
    out = []
    for sub in subs:
        manage = allowed(sub.role, "deployments.manage")
        if manage not in rendered:
            rendered[manage] = render_template(
                "deployments/_live.html", oob=True, manage=manage, automation_off=off, **context
            )
        out.append((sub, rendered[manage]))
    return out


def _list_for(subs: list) -> list[tuple]:
    """The list page's table, per socket: only the deployments whose clients it may all see."""
    if not subs:
        return []
    everything = list(db.session.execute(domain.visible_select_all()).scalars())
    ids = [d.id for d in everything]
    today, lines = today_counts(ids), pnl(ids, get_redis())
    off = domain.automation_off()
    out = []
    for sub in subs:
        shown = [d for d in everything if _sees_all(sub, [dc.client_id for dc in d.clients])]
        html = render_template(
            "deployments/_list.html", oob=True, deployments=shown, today=today, pnl=lines, automation_off=off
        )
        out.append((sub, html))
    return out


def snapshot(sub) -> list[str]:
    """On (re)connect: the page's partial as it is now."""
    if sub.page == "deployment" and sub.target:
        return [html for _, html in _detail_for(sub.target, [sub])]
    if sub.page == "deployments":
        return [html for _, html in _list_for([sub])]
    return []

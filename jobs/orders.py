"""Order jobs: send a batch, sync clients' books, reconcile what crashed workers left behind."""
from __future__ import annotations

from flask import current_app

from jobs.context import app_job
from webapp.extensions import get_redis
from webapp.tasks import QUEUE_SYNC, enqueue
from webapp.trading import engine, sync
from webapp.trading.engine import Context
from webapp.vault import current_vault


def context() -> Context:
    return Context(app=current_app._get_current_object(), config=current_app.config, vault=current_vault(),
                   redis=get_redis())


@app_job
def send_batch(batch_id: int) -> dict[str, int]:
    counts = engine.send_batch(batch_id, context())
    client_ids = engine.batch_client_ids(batch_id)
    enqueue("jobs.orders.sync_clients", client_ids, queue_name=QUEUE_SYNC, result_ttl=60, failure_ttl=3600)
    return counts


@app_job
def send_children(order_ids: list[int]) -> list[str]:
    ctx = context()
    return [engine.send_child(order_id, ctx) for order_id in order_ids]


@app_job
def sync_clients(client_ids: list[int]) -> int:
    """Clients in parallel: each is a few broker round trips, and a batch may touch hundreds."""
    ctx = context()
    return sum(1 for ok in engine.run_for_clients(client_ids, ctx, sync.sync_client) if ok)


@app_job
def reconcile() -> dict[str, int]:
    return engine.reconcile(context())


@app_job
def sync_open_orders() -> int:
    ctx = context()
    return sum(1 for ok in engine.run_for_clients(sync.clients_with_open_orders(), ctx, sync.sync_client) if ok)


@app_job
def sync_all_clients() -> int:
    ctx = context()
    return sum(1 for ok in engine.run_for_clients(sync.connected_clients(), ctx, sync.sync_client) if ok)


@app_job
def cancel_children(order_ids: list[int]) -> list[str]:
    ctx = context()
    results = engine.run_concurrently(order_ids, ctx, engine.cancel_child)
    _sync_after(order_ids, ctx)
    return results


@app_job
def modify_children(order_ids: list[int], price: str) -> list[str]:
    from decimal import Decimal

    ctx = context()
    results = engine.run_concurrently(order_ids, ctx, engine.modify_child, Decimal(price))
    _sync_after(order_ids, ctx)
    return results


def _sync_after(order_ids: list[int], ctx: Context) -> None:
    for client_id in engine.client_ids_of(order_ids):
        sync.sync_client(client_id, ctx)


@app_job
def chase_limits() -> int:
    from webapp.trading import chase

    return chase.chase(context())

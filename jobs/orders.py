"""Order jobs: send a batch, sync clients' books, reconcile what crashed workers left behind."""

from __future__ import annotations

import logging
from decimal import Decimal

import sqlalchemy as sa
from rq import Worker, get_current_job
from rq.job import Job

from jobs.context import app_job
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.models import Batch, Client, Instrument, Order
from webapp.models.base import in_ids
from webapp.tasks import QUEUE_ORDERS, SEND_JOB, enqueue, queue
from webapp.timeutil import as_utc
from webapp.trading import engine, order_actions, sync, sync_requests
from webapp.trading.children import run_concurrently
from webapp.trading.context import Context, build_context

log = logging.getLogger(__name__)


def context() -> Context:
    job = get_current_job()  # its worker is named in the child locks it takes (engine.orphaned_children)
    return build_context(holder=(job.worker_name or "") if job else "")


MIN_CHUNK = 100  # a batch is split over the orders workers only in parts at least this big


@app_job
def send_batch(batch_id: int) -> dict[str, int]:
    """Send a batch. A big one is split in equal parts, one per orders worker (at least
    MIN_CHUNK children each): the others take theirs from the queue while this one sends the
    first. One process spends about a millisecond of Python per child, on one core."""
    ids = engine.children_to_send(batch_id)
    workers = Worker.count(queue=queue(QUEUE_ORDERS))
    parts = max(1, min(workers, len(ids) // MIN_CHUNK))
    size = -(-len(ids) // parts) if ids else 1
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]
    for n, chunk in enumerate(chunks[1:], start=1):
        enqueue(
            "jobs.orders.send_children",
            batch_id,
            chunk,
            queue_name=QUEUE_ORDERS,
            job_id=f"send-batch-{batch_id}-{n}",
            **SEND_JOB,
        )
    log_batch(batch_id, len(ids))  # after the other parts are queued: they do not wait for the log's read
    return _send(batch_id, chunks[0])


@app_job
def send_children(batch_id: int, order_ids: list[int]) -> dict[str, int]:
    return _send(batch_id, order_ids)


def _send(batch_id: int, order_ids: list[int]) -> dict[str, int]:
    counts = engine.send_batch(batch_id, context(), order_ids)
    log_outcomes(batch_id, order_ids)
    sync_requests.request_sync(get_redis(), engine.client_ids_of(order_ids))
    return counts


def _job_id() -> str:
    job = get_current_job()
    return job.id if job else "-"


def log_batch(batch_id: int, children: int) -> None:
    """The one INFO line a batch's send job writes when it starts (docs/operations.md)."""
    row = db.session.execute(
        sa.select(Batch.kind, Batch.action, Instrument.exchange, Instrument.tradingsymbol)
        .outerjoin(Instrument, Batch.instrument_id == Instrument.id)
        .where(Batch.id == batch_id)
    ).first()
    db.session.commit()
    kind, side, exchange, symbol = row if row else ("-", "-", None, None)
    log.info(
        "op=batch job=%s batch=%s kind=%s clients=%s instrument=%s side=%s",
        _job_id(),
        batch_id,
        kind,
        children,
        f"{exchange}:{symbol}" if symbol else "-",
        side,
    )


def log_outcomes(batch_id: int, order_ids: list[int]) -> None:
    """One INFO line per child this job sent, in the state the send left it: the client by its
    broker code (never its name), the broker's order id, and the latency from the child's creation
    (the ticket's submit) to the broker's acknowledgement."""
    if not order_ids:
        return
    rows = db.session.execute(
        sa.select(
            Order.id,
            Order.status,
            Order.broker_order_id,
            Order.reason,
            Order.created_at,
            Order.acknowledged_at,
            Client.client_code,
            Client.broker,
        )
        .join(Client, Order.client_id == Client.id)
        .where(in_ids(Order.id, order_ids))
        .order_by(Order.id)
    ).all()
    db.session.commit()
    job = _job_id()
    for row in rows:
        latency = (
            round((as_utc(row.acknowledged_at) - as_utc(row.created_at)).total_seconds() * 1000)
            if row.acknowledged_at and row.created_at
            else "-"
        )
        log.info(
            "op=order job=%s batch=%s order=%s client_code=%s broker=%s state=%s broker_order_id=%s "
            "latency_ms=%s reason=%r",
            job,
            batch_id,
            row.id,
            row.client_code,
            row.broker,
            row.status,
            row.broker_order_id or "-",
            latency,
            row.reason or "",
        )


@app_job
def sync_wanted() -> int:
    """The clients sends asked to sync since the last run (webapp/trading/sync_requests.py)."""
    return len(sync.sync_clients(sync_requests.take_wanted(get_redis()), context(), full=False))


@app_job
def reconcile() -> dict[str, int]:
    return engine.reconcile(context(), abandoned_batches=abandoned_send_batches())


@app_job
def reclaim_orphans() -> dict[str, int]:
    return engine.reclaim_orphans(context(), abandoned_batches=abandoned_send_batches())


SEND_JOBS = ("jobs.orders.send_batch", "jobs.orders.send_children")


def abandoned_send_batches() -> list[int]:
    """Batches whose send job lost its worker mid-job. RQ counts a job abandoned when its
    execution's heartbeat lapses: a few seconds for an OrdersWorker (jobs/worker.py). RQ's own
    cleanup then moves those jobs on (retried or failed), so each is reported once."""
    registry = queue(QUEUE_ORDERS).started_job_registry
    job_ids = registry.get_expired_job_ids()
    if not job_ids:
        return []
    jobs = Job.fetch_many(job_ids, connection=get_rq_redis())
    batches = sorted({job.args[0] for job in jobs if job is not None and job.func_name in SEND_JOBS and job.args})
    registry.cleanup()
    return batches


@app_job
def sync_open_orders() -> int:
    return len(sync.sync_clients(sync.clients_with_open_orders(), context(), full=False))


@app_job
def sync_all_clients() -> int:
    return len(sync.sync_clients(sync.connected_clients(), context(), full=True))


@app_job
def cancel_children(order_ids: list[int], by: str = "the desk") -> list[str]:
    """`by`: who asked (webapp/trading/order_actions.py cancel_child), named in each child's reason
    (the default: a job queued before callers named themselves)."""
    ctx = context()
    results = run_concurrently(order_ids, ctx, lambda order_id, c: order_actions.cancel_child(order_id, c, by))
    _sync_after(order_ids, ctx)
    return results


@app_job
def modify_children(order_ids: list[int], price: str) -> list[str]:
    from decimal import Decimal

    ctx = context()
    results = run_concurrently(order_ids, ctx, order_actions.modify_child, Decimal(price))
    _sync_after(order_ids, ctx)
    return results


@app_job
def modify_order(order_id: int, quantity: int | None, price: str | None, trigger_price: str | None) -> str:
    """One child's new quantity, price and/or trigger (the order book's per-order modify)."""
    ctx = context()
    result = order_actions.change_child(
        order_id,
        ctx,
        quantity=quantity,
        price=Decimal(price) if price is not None else None,
        trigger_price=Decimal(trigger_price) if trigger_price is not None else None,
    )
    _sync_after([order_id], ctx)
    return result


def _sync_after(order_ids: list[int], ctx: Context) -> None:
    sync.sync_clients(engine.client_ids_of(order_ids), ctx, full=False)


@app_job
def chase_limits() -> int:
    from webapp.trading import chase

    return chase.chase(context())

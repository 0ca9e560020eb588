"""Readiness checks and the operator's detailed status (queues, workers, each role's live processes)."""

from __future__ import annotations

import sqlalchemy as sa

from webapp.extensions import db, get_redis, get_rq_redis
from webapp.tasks import CRON_HEARTBEAT_KEY, QUEUES


def check_database() -> str:
    try:
        db.session.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as exc:  # noqa: BLE001  (any driver error means "not ready")
        db.session.rollback()
        return f"error: {type(exc).__name__}"


def check_redis() -> str:
    try:
        get_redis().ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001  (any client error means "not ready")
        return f"error: {type(exc).__name__}"


def role_processes() -> dict | None:
    """Each watched role's live processes (webapp/health/roles.py), or None when Redis cannot say."""
    from webapp.health.roles import live_processes

    try:
        return live_processes(get_redis(), get_rq_redis())
    except Exception:  # noqa: BLE001  (Redis went away mid-read: the redis check reports it)
        return None


def role_counts() -> dict[str, int]:
    """Role → number of live processes, for the desk's status strip; {} when Redis cannot say."""
    roles = role_processes()
    return {} if roles is None else {role: len(processes) for role, processes in roles.items()}


def detailed_status() -> dict:
    from rq import Queue, Worker

    status: dict = {"database": check_database(), "redis": check_redis()}
    if status["redis"] != "ok":
        return status
    connection = get_rq_redis()
    status["queues"] = {name: Queue(name, connection=connection).count for name in QUEUES}
    status["workers"] = [
        {"name": w.name, "state": w.get_state(), "queues": w.queue_names()} for w in Worker.all(connection=connection)
    ]
    status["cron_heartbeat"] = get_redis().get(CRON_HEARTBEAT_KEY)
    roles = role_processes()
    if roles is not None:
        status["roles"] = {role: [p.as_dict() for p in processes] for role, processes in roles.items()}
    return status

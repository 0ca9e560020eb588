"""What the admins' health page and /metrics read: each role's processes, the RQ queues and workers,
the feed, broker sessions and the recent failed jobs. Everything comes from Redis and the database
(shared by every process on every host), read when asked: no process keeps a count of its own.

Open sockets are the exception: only a web process knows how many sockets its hub holds, so each
one writes its count under its own key with a short TTL (`report_sockets`, every SOCKETS_EVERY
seconds from a thread of its own) and readers sum the keys; a web process that dies drops out when
its key expires.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.health.roles import LIVE_SECONDS, PROCESSES_KEY, SHOWN, WORKER_ROLES
from webapp.models import Client, Order
from webapp.tasks import QUEUES
from webapp.timeutil import as_utc, utcnow
from webapp.trading.risk import start_of_day

# a heartbeat older than this is late: idle workers beat every 15 s, a forking worker busy with a job every
# 30 s (RQ's job monitoring interval), cron every 2 s, the feed every second; older than LIVE_SECONDS: gone
LATE_SECONDS = 35
TICKING_SECONDS = 60  # an instrument whose last quote is younger than this is ticking
RECENT_ERRORS = 10
SOCKETS_KEY = "fanout:sockets:{process}"
SOCKETS_TTL = 30
SOCKETS_EVERY = 10


# ------------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class ProcessRow:
    name: str
    host: str
    pid: int
    seen: datetime | None  # UTC, its last heartbeat
    state: str  # alive | late | missing (registered, no heartbeat for LIVE_SECONDS)

    @property
    def age(self) -> float | None:
        return None if self.seen is None else max((utcnow() - self.seen).total_seconds(), 0.0)


@dataclass
class RoleRow:
    role: str
    processes: list[ProcessRow] = field(default_factory=list)

    @property
    def state(self) -> str:
        states = {p.state for p in self.processes}
        return "alive" if "alive" in states else "late" if "late" in states else "missing"

    @property
    def last_seen(self) -> datetime | None:
        seen = [p.seen for p in self.processes if p.seen is not None]
        return max(seen) if seen else None


def _state(seen: datetime | None, now: datetime) -> str:
    if seen is None:
        return "missing"
    age = (now - seen).total_seconds()
    return "alive" if age <= LATE_SECONDS else "late" if age <= LIVE_SECONDS else "missing"


def roles(redis, rq_redis, now: datetime | None = None) -> list[RoleRow]:
    """Every role shown (webapp/health/roles.py), each with its processes — a registered process
    whose heartbeat stopped too (a worker killed hard stays registered until its key expires),
    so the page can say since when a role is missing."""
    from rq import Worker
    from rq.cron_scheduler_registry import get_registry_key

    now = now or utcnow()
    rows = {role: RoleRow(role) for role in SHOWN}
    for worker in Worker.all(connection=rq_redis):
        seen = as_utc(worker.last_heartbeat) if worker.last_heartbeat else None
        for role in sorted({WORKER_ROLES[q] for q in worker.queue_names() if q in WORKER_ROLES}):
            rows[role].processes.append(
                ProcessRow(worker.name, worker.hostname or "", int(worker.pid or 0), seen, _state(seen, now))
            )
    for raw, score in rq_redis.zrange(get_registry_key(), 0, -1, withscores=True):
        name = raw.decode() if isinstance(raw, bytes) else raw
        host, pid = rq_redis.hmget(f"rq:cron_scheduler:{name}", "hostname", "pid")
        seen = datetime.fromtimestamp(score, UTC)
        rows["cron"].processes.append(ProcessRow(name, _text(host), int(pid or 0), seen, _state(seen, now)))
    for raw, score in redis.zrange(PROCESSES_KEY.format(role="feed"), 0, -1, withscores=True):
        name = _text(raw)
        host, _, pid = name.rpartition(":")
        seen = datetime.fromtimestamp(score, UTC)
        rows["feed"].processes.append(ProcessRow(name, host, int(pid) if pid.isdigit() else 0, seen, _state(seen, now)))
    for row in rows.values():
        row.processes.sort(key=lambda p: p.name)
    return list(rows.values())


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


# ------------------------------------------------------------------------------------ queues, workers


@dataclass(frozen=True)
class QueueRow:
    name: str
    queued: int
    started: int
    failed: int
    scheduled: int


def queues(rq_redis) -> list[QueueRow]:
    from rq import Queue

    rows = []
    for name in QUEUES:
        q = Queue(name, connection=rq_redis)
        rows.append(
            QueueRow(
                name, q.count, q.started_job_registry.count, q.failed_job_registry.count, q.scheduled_job_registry.count
            )
        )
    return rows


@dataclass(frozen=True)
class WorkerRow:
    name: str
    queues: tuple[str, ...]
    state: str
    job_id: str | None
    job_func: str | None
    since: datetime | None  # UTC: the current job's start, or the worker's birth when idle
    seen: datetime | None
    alive: bool


def workers(rq_redis, now: datetime | None = None) -> list[WorkerRow]:
    from rq import Worker
    from rq.job import Job

    now = now or utcnow()
    rows = []
    for worker in Worker.all(connection=rq_redis):
        job_id = worker.get_current_job_id()
        job = Job.fetch_many([job_id], connection=rq_redis)[0] if job_id else None
        started = job.started_at if job is not None and job.started_at else None
        since = started or worker.birth_date
        seen = as_utc(worker.last_heartbeat) if worker.last_heartbeat else None
        rows.append(
            WorkerRow(
                name=worker.name,
                queues=tuple(worker.queue_names()),
                state=str(getattr(worker.get_state(), "value", worker.get_state())),  # an enum, or its text
                job_id=job_id,
                job_func=job.func_name if job is not None else None,
                since=as_utc(since) if since else None,
                seen=seen,
                alive=_state(seen, now) != "missing",
            )
        )
    return sorted(rows, key=lambda w: w.name)


def worker_states(rq_redis) -> dict[str, int]:
    """Live RQ workers per state (busy, idle, …): registered ones whose heartbeat lapsed left out."""
    counts: dict[str, int] = {}
    for row in workers(rq_redis):
        if row.alive:
            counts[row.state] = counts.get(row.state, 0) + 1
    return counts


# ------------------------------------------------------------------------------------ feed


@dataclass(frozen=True)
class FeedState:
    source: str
    last_round: datetime | None  # UTC: the feed's last round (its heartbeat)
    subscribed: int
    ticking: int  # subscribed instruments with a quote younger than TICKING_SECONDS

    @property
    def lag(self) -> float | None:
        return None if self.last_round is None else max((utcnow() - self.last_round).total_seconds(), 0.0)


def feed(redis, source: str, now: datetime | None = None) -> FeedState:
    import json

    from webapp.marketdata.store import quote_key
    from webapp.marketfeed.feed import HEARTBEAT_KEY, SUBSCRIPTIONS_KEY

    now = now or utcnow()
    beat = redis.get(HEARTBEAT_KEY)
    last = as_utc(datetime.fromisoformat(_text(beat))) if beat else None
    tokens = [int(t) for t in redis.smembers(SUBSCRIPTIONS_KEY)]
    ticking = 0
    if tokens:
        for raw in redis.mget([quote_key(t) for t in tokens]):
            if not raw:
                continue
            stamp = json.loads(raw).get("timestamp")
            if stamp and (now - as_utc(datetime.fromisoformat(stamp))).total_seconds() <= TICKING_SECONDS:
                ticking += 1
    return FeedState(source, last, len(tokens), ticking)


# ------------------------------------------------------------------------------------ sockets


def _process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def report_sockets(redis, count: int) -> None:
    """This web process holds `count` open sockets (kept SOCKETS_TTL seconds)."""
    redis.set(SOCKETS_KEY.format(process=_process_name()), int(count), ex=SOCKETS_TTL)


def open_sockets(redis) -> int:
    """The sockets open in every live web process (each one's last report)."""
    keys = list(redis.scan_iter(match=SOCKETS_KEY.format(process="*"), count=500))
    return sum(int(value) for value in redis.mget(keys) if value) if keys else 0


def hub_sockets(app) -> int:
    hub = app.extensions.get("fanout_hub")
    return 0 if hub is None else len(hub.subscribers)


_reporter_pid: int | None = None
_reporter_lock = threading.Lock()


def start_socket_reporter(app) -> None:
    """Once per web process (threads do not survive gunicorn's fork): a thread that reports the
    process's open sockets every SOCKETS_EVERY seconds. Redis away: it tries again next time."""
    global _reporter_pid
    if _reporter_pid == os.getpid():  # every request asks: the answer is almost always here
        return
    with _reporter_lock:
        if _reporter_pid == os.getpid():
            return
        _reporter_pid = os.getpid()

    def loop() -> None:
        import logging

        from webapp.extensions import get_redis

        stop = threading.Event()
        while not stop.wait(SOCKETS_EVERY):
            try:
                with app.app_context():
                    report_sockets(get_redis(), hub_sockets(app))
            except Exception as exc:  # noqa: BLE001  (Redis away: the key expires, the next beat writes it)
                logging.getLogger(__name__).debug("op=sockets report=failed error=%s", type(exc).__name__)

    threading.Thread(target=loop, name="fanout-sockets", daemon=True).start()


# ------------------------------------------------------------------------------------ broker sessions


@dataclass(frozen=True)
class SessionRow:
    client_id: int
    name: str
    client_code: str
    broker: str
    state: str  # expired | expiring | none
    expires_at: datetime | None


def end_of_ist_day(now: datetime) -> datetime:
    return start_of_day(now) + timedelta(days=1)


def broker_sessions(now: datetime | None = None) -> list[SessionRow]:
    """Enabled clients at a broker with a login whose session is expired, missing, or ends before
    the IST day does (they need a login before the next session)."""
    from webapp.brokers import sessionless_brokers

    now = now or utcnow()
    midnight = end_of_ist_day(now)
    clients = db.session.execute(
        sa.select(Client)
        .where(Client.enabled.is_(True), Client.broker.not_in(sessionless_brokers()))
        .order_by(Client.name)
    ).scalars()
    rows = []
    for c in clients:
        state = c.session_state(now)
        if state == "connected" and as_utc(c.session_expires_at) > midnight:
            continue
        rows.append(
            SessionRow(
                c.id,
                c.name,
                c.client_code,
                c.broker,
                "expiring" if state == "connected" else state,
                as_utc(c.session_expires_at) if c.session_expires_at else None,
            )
        )
    db.session.commit()
    return rows


# ------------------------------------------------------------------------------------ recent errors


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    func: str
    ended_at: datetime | None
    summary: str


def recent_failures(rq_redis, limit: int = RECENT_ERRORS) -> list[FailedJob]:
    """The newest failed jobs over every queue, each with the last line of its exception."""
    from rq import Queue
    from rq.job import Job

    found: list[FailedJob] = []
    for name in QUEUES:
        registry = Queue(name, connection=rq_redis).failed_job_registry
        ids = registry.get_job_ids(0, limit - 1, desc=True)  # scored by when each expires: the newest first
        for job in Job.fetch_many(ids, connection=rq_redis):
            if job is None:
                continue
            found.append(
                FailedJob(
                    job.id,
                    name,
                    job.func_name or "",
                    as_utc(job.ended_at) if job.ended_at else None,
                    exception_summary(_exc_string(job)),
                )
            )
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda f: f.ended_at or epoch, reverse=True)[:limit]


def _exc_string(job) -> str:
    result = job.latest_result()  # RQ 2 keeps a failed run's traceback in its result
    if result is not None and result.exc_string:
        return result.exc_string
    return getattr(job, "_exc_info", None) or ""  # put in the registry without a run


def exception_summary(exc_info: str, width: int = 200) -> str:
    """A traceback's last non-empty line (the exception and its message), cut to `width`."""
    lines = [line.strip() for line in exc_info.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------------------------ orders today


def orders_today(now: datetime | None = None) -> list[tuple[str, str, int]]:
    """(state, broker, count) of the children created since IST midnight."""
    since = start_of_day(now)
    rows = db.session.execute(
        sa.select(Order.status, Client.broker, sa.func.count())
        .join(Client, Order.client_id == Client.id)
        .where(Order.created_at >= since)
        .group_by(Order.status, Client.broker)
        .order_by(Client.broker, Order.status)
    ).all()
    db.session.commit()
    return [(status, broker, int(n)) for status, broker, n in rows]


def send_latencies(now: datetime | None = None) -> dict[str, list[float]]:
    """Broker → seconds from each child's creation (the ticket's submit, when it was queued) to
    the broker's acknowledgement, for today's (IST) acknowledged children."""
    since = start_of_day(now)
    rows = db.session.execute(
        sa.select(Client.broker, Order.created_at, Order.acknowledged_at)
        .join(Client, Order.client_id == Client.id)
        .where(Order.created_at >= since, Order.acknowledged_at.is_not(None))
    ).all()
    db.session.commit()
    found: dict[str, list[float]] = {}
    for broker, created, acknowledged in rows:
        found.setdefault(broker, []).append(max((as_utc(acknowledged) - as_utc(created)).total_seconds(), 0.0))
    return found

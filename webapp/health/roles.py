"""Which processes of each role are alive, read from their heartbeats in Redis (any host).

- `orders` and `worker`: RQ's own worker registry. A worker is live while its last heartbeat is
  recent; the Procfile runs them with `--worker-ttl 30`, so an idle worker beats at least every
  15 s, one busy with a job at least every 30 s (RQ's job monitoring interval; an orders worker
  every second, jobs/worker.py). A worker killed
  with SIGKILL stays registered until its key expires; its heartbeat ages out of LIVE_SECONDS first.
- `cron`: `rq cron` registers itself too (RQ's cron scheduler registry, a sorted set scored by the
  time of each scheduler's last heartbeat, sent every loop: at least every 2 s with jobs.cron).
- `feed`: RQ knows nothing of it; every feed process, the standby too, beats each round (`beat`)
  into a sorted set of its own with a TTL (one read, however many keys Redis holds).

The web role needs no heartbeat: a page that answers proves one web process is up.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from webapp.tasks import QUEUE_BACKTESTS, QUEUE_DEFAULT, QUEUE_ORDERS, QUEUE_STRATEGIES, QUEUE_SYNC
from webapp.timeutil import utcnow

LIVE_SECONDS = 45
WATCHED = ("orders", "strategies", "worker", "cron", "feed")  # the roles /health/ready reports degraded without
SHOWN = (*WATCHED, "backtests")  # a desk without a backtests worker still trades: shown, not degraded
WORKER_ROLES = {
    QUEUE_ORDERS: "orders",
    QUEUE_STRATEGIES: "strategies",
    QUEUE_SYNC: "worker",
    QUEUE_DEFAULT: "worker",
    QUEUE_BACKTESTS: "backtests",
}
PROCESSES_KEY = "fanout:processes:{role}"


@dataclass(frozen=True)
class Process:
    name: str
    host: str
    pid: int
    seen: datetime  # UTC, the last heartbeat

    def as_dict(self) -> dict:
        return {"name": self.name, "host": self.host, "pid": self.pid, "seen": self.seen.isoformat()}


def beat(redis, role: str) -> None:
    """One heartbeat of this process, for a role RQ does not register (the feed): a sorted set per
    role scored by each process's last beat, like RQ's cron registry; one that stops beating ages out."""
    key = PROCESSES_KEY.format(role=role)
    now = time.time()
    with redis.pipeline() as pipe:
        pipe.zadd(key, {f"{socket.gethostname()}:{os.getpid()}": now})
        pipe.zremrangebyscore(key, "-inf", now - LIVE_SECONDS)  # the dead, long gone
        pipe.expire(key, LIVE_SECONDS)
        pipe.execute()


def live_processes(redis, rq_redis) -> dict[str, list[Process]]:
    """Every role shown → its live processes (an empty list: none). Raises redis errors."""
    roles: dict[str, list[Process]] = {role: [] for role in SHOWN}
    for role, process in _rq_workers(rq_redis):
        roles[role].append(process)
    roles["cron"] = _cron_schedulers(rq_redis)
    roles["feed"] = _own_heartbeats(redis, "feed")
    return roles


def missing_roles(roles: dict[str, list[Process]]) -> list[str]:
    return [role for role in WATCHED if not roles.get(role)]


def _fresh(seen: datetime | None, now: datetime) -> bool:
    return seen is not None and (now - seen).total_seconds() <= LIVE_SECONDS


def _rq_workers(rq_redis):
    from rq import Worker

    now = utcnow()
    for worker in Worker.all(connection=rq_redis):
        if not _fresh(worker.last_heartbeat, now):
            continue
        roles = {WORKER_ROLES[name] for name in worker.queue_names() if name in WORKER_ROLES}
        for role in sorted(roles):
            yield role, Process(worker.name, worker.hostname or "", int(worker.pid or 0), worker.last_heartbeat)


def _cron_schedulers(rq_redis) -> list[Process]:
    from rq.cron_scheduler_registry import get_registry_key

    now = utcnow()
    found = []
    for raw_name, score in rq_redis.zrangebyscore(
        get_registry_key(), now.timestamp() - LIVE_SECONDS, "+inf", withscores=True
    ):
        name = raw_name.decode()
        host, pid = rq_redis.hmget(f"rq:cron_scheduler:{name}", "hostname", "pid")
        seen = datetime.fromtimestamp(score, now.tzinfo)
        found.append(Process(name, (host or b"").decode(), int(pid or 0), seen))
    return found


def _own_heartbeats(redis, role: str) -> list[Process]:
    found = []
    for name, score in redis.zrangebyscore(
        PROCESSES_KEY.format(role=role), time.time() - LIVE_SECONDS, "+inf", withscores=True
    ):
        host, _, pid = name.rpartition(":")
        found.append(Process(name, host, int(pid) if pid.isdigit() else 0, datetime.fromtimestamp(score, UTC)))
    return sorted(found, key=lambda p: p.name)

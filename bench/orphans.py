"""A dead orders worker's children: the time from SIGKILL mid-send to every child of its batch resolved.

    python bench/orphans.py --clients 50 --rtt-ms 1000 --runs 3
    git archive 54e8626 | tar -x -C /tmp/before && python bench/orphans.py --tree /tmp/before

Starts an embedded Redis (or --redis-url), a SQLite database (or --database-url), the Kite emulator
with R ms added to every answer, N Kite clients, two orders workers (`OrdersWorker`) and `rq cron
jobs.cron` as `make run` starts them, run from --tree when given (another revision, exported: the
"before" of a change; the bench itself seeds and reads with this tree). Each run writes a batch of
one MARKET child per client and queues its send job; once every child is SUBMITTING (its call is
out, and takes R ms) the worker running the job is SIGKILLed, and a fresh one is started in its
place, as the supervisor would. Then the database is read every 50 ms until no child of the batch
is NEW, SUBMITTING or UNKNOWN.

Reported per run and as a summary: seconds from the kill until no child is SUBMITTING (looked up)
and until none is in flight (resolved); the children's final states; and the emulator's ledger
(every child booked exactly once). Progress goes to stderr, one JSON object is the last stdout line.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # `python bench/orphans.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.fanout import seed, start_emulator
from bench.harness import ROOT, Processes, add_service_args, log, machine, run_bench, summary, versions
from bench.live_harness import make_app, prepare

IN_FLIGHT = ("NEW", "SUBMITTING", "UNKNOWN")
POLL = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="Kite clients on each batch (N)")
    p.add_argument("--rtt-ms", type=float, default=1000.0, help="latency the emulator adds to every answer")
    p.add_argument("--runs", type=int, default=3, help="batches whose worker is killed")
    p.add_argument("--kill-after", type=float, default=0.3, help="seconds after every child is SUBMITTING")
    p.add_argument("--limit", type=float, default=180.0, help="give a run up after this many seconds")
    p.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="run the workers and cron from this exported tree (default: this checkout)",
    )
    add_service_args(p)
    return p.parse_args(argv)


class Desk:
    """The orders workers and the cron, from one tree, each in its own process group."""

    def __init__(self, processes: Processes, env: dict[str, str], tree: Path):
        self.processes, self.tree, self.started = processes, tree, 0
        self.env = {**env, "PYTHONPATH": str(tree)}
        self.workers: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.processes.log_dir / f"{name}.log", "ab") as log_file:  # the child holds its own descriptor
            process = subprocess.Popen(
                argv, env=self.env, cwd=self.tree, start_new_session=True, stdout=log_file, stderr=log_file
            )
        self.processes.started.append((name, process))  # stopped with everything else at the end
        return process

    def start_worker(self) -> str:
        self.started += 1
        name = f"bench-orders-{os.getpid()}-{self.started}"
        self.workers[name] = self._start(
            name,
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--worker-class",
                "jobs.worker.OrdersWorker",
                "--config",
                "jobs.settings",
                "--name",
                name,
                "orders",
            ],
        )
        return name

    def start_cron(self) -> None:
        self._start("cron", [sys.executable, "-m", "rq.cli", "cron", "--config", "jobs.settings", "jobs.cron"])

    def kill(self, name: str) -> None:
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.processes.started = [(n, p) for n, p in self.processes.started if p is not process]

    def running(self, rq_redis, job_id: str) -> str | None:
        for name in self.workers:
            current = rq_redis.hget(f"rq:worker:{name}", "current_job")
            if current and current.decode() == job_id:
                return name
        return None


def write_batch(app, instrument_id: int, client_ids: list[int]) -> tuple[int, list[str]]:
    """One MARKET child per client, written as the ticket writes them, and its send job queued."""
    from webapp.extensions import db
    from webapp.models import Batch, Order
    from webapp.tasks import QUEUE_ORDERS, SEND_JOB, enqueue
    from webapp.trading.tickets import new_tag

    with app.app_context():
        batch = Batch(
            ticket_id=str(uuid.uuid4()),
            kind="ticket",
            action="BUY",
            instrument_id=instrument_id,
            product="MIS",
            order_type="MARKET",
            validity="DAY",
            note="bench orphans",
        )
        db.session.add(batch)
        db.session.flush()
        tags = [new_tag() for _ in client_ids]
        db.session.execute(
            Order.__table__.insert(),
            [
                dict(
                    batch_id=batch.id,
                    client_id=c,
                    instrument_id=instrument_id,
                    side="BUY",
                    quantity=1,
                    product="MIS",
                    order_type="MARKET",
                    validity="DAY",
                    tag=tag,
                    status="NEW",
                    reason="",
                )
                for c, tag in zip(client_ids, tags)
            ],
        )
        db.session.commit()
        enqueue(
            "jobs.orders.send_batch", batch.id, queue_name=QUEUE_ORDERS, job_id=f"send-batch-{batch.id}", **SEND_JOB
        )
        return batch.id, tags


def statuses(app, batch_id: int) -> Counter:
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Order

    with app.app_context():
        found = Counter(
            dict(
                db.session.execute(
                    sa.select(Order.status, sa.func.count()).where(Order.batch_id == batch_id).group_by(Order.status)
                ).all()
            )
        )
        db.session.remove()
    return found


def wait_for(condition, limit: float, what: str):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(POLL)
    raise RuntimeError(f"{what}: not within {limit:g} s")


def one_run(args, app, desk: Desk, rq_redis, instrument_id: int, client_ids: list[int]) -> dict:
    batch_id, tags = write_batch(app, instrument_id, client_ids)
    job_id = f"send-batch-{batch_id}"
    victim = wait_for(lambda: desk.running(rq_redis, job_id), 60, "no worker took the send job")
    wait_for(lambda: statuses(app, batch_id)["SUBMITTING"] == len(client_ids), 60, "the children were not claimed")
    time.sleep(args.kill_after)
    desk.kill(victim)
    killed = time.monotonic()
    desk.start_worker()  # as the supervisor would
    log(f"batch {batch_id}: killed {victim} mid-send")
    looked_up = resolved = None
    while resolved is None:
        now, found = time.monotonic(), statuses(app, batch_id)
        if looked_up is None and not found["SUBMITTING"] and not found["NEW"]:
            looked_up = now - killed
        if not any(found[s] for s in IN_FLIGHT):
            resolved = now - killed
        elif now - killed > args.limit:
            raise RuntimeError(f"batch {batch_id} still in flight {args.limit:g} s after the kill: {dict(found)}")
        time.sleep(POLL)
    log(f"batch {batch_id}: looked up {looked_up:.1f} s, resolved {resolved:.1f} s after the kill: {dict(found)}")
    return {
        "batch": batch_id,
        "looked_up_s": round(looked_up, 2),
        "resolved_s": round(resolved, 2),
        "final": dict(found),
        "tags": tags,
    }


def ledger(emulator_url: str, runs: list[dict]) -> dict:
    booked = Counter(e["tag"] for e in requests.get(f"{emulator_url}/_emulator/ledger", timeout=60).json())
    expected = {tag for run in runs for tag in run.pop("tags")}
    return {
        "expected": len(expected),
        "booked_once": sum(1 for t in expected if booked.get(t) == 1),
        "duplicates": sum(n - 1 for n in booked.values() if n > 1),
        "unexpected": sum(n for t, n in booked.items() if t not in expected),
    }


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    import redis as redis_lib

    os.environ.setdefault("FANOUT_AUDIT_KEYS", secrets.token_urlsafe(32))  # prepare() copies the environment
    env = prepare(args, tmp, started)
    env.update(BROKER_TIMEOUT_SECONDS=str(max(7, int(3 * args.rtt_ms / 1000) + 1)), PYTHONUNBUFFERED="1")
    emulator_url = start_emulator(processes, args.rtt_ms)
    env.update(KITE_API_URL=emulator_url, KITE_LOGIN_URL=emulator_url)
    os.environ.update(env)
    app = make_app()
    instrument_id, client_ids = seed(app, emulator_url, args.clients)
    tree = (args.tree or ROOT).resolve()
    desk = Desk(processes, env, tree)
    for _ in range(2):
        desk.start_worker()
    desk.start_cron()
    rq_redis = redis_lib.Redis.from_url(env["REDIS_URL"])
    runs = [one_run(args, app, desk, rq_redis, instrument_id, client_ids) for _ in range(args.runs)]
    booked = ledger(emulator_url, runs)
    revision = (
        versions("rq", "redis").get("fanout")
        if tree == ROOT.resolve()
        else os.environ.get("FANOUT_REVISION", str(tree))
    )
    return {
        "bench": "orphans",
        "ok": booked["booked_once"] == booked["expected"] and not booked["duplicates"],
        "tree": revision,
        "clients": args.clients,
        "rtt_ms": args.rtt_ms,
        "kill_after_s": args.kill_after,
        "resolved_s": summary([r["resolved_s"] for r in runs]),
        "looked_up_s": summary([r["looked_up_s"] for r in runs]),
        "runs": runs,
        "ledger": booked,
        "machine": machine(),
        "versions": versions("rq", "redis"),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "orphans",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"clients": args.clients, "rtt_ms": args.rtt_ms},
    )


if __name__ == "__main__":
    sys.exit(main())

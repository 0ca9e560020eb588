"""Chaos with real processes. Three `rq worker` processes, started as the Procfile starts its
`orders` workers, send six batches of 36 Kite clients to an emulator that times out after
accepting, drops connections, answers 5xx (before and after accepting) and 429s. Four of the six
send jobs, chosen by the seed, lose their worker process (which runs the job itself: SIGKILL, as
an OOM kill or a crash would) at a random moment of the job, and idle workers die now and then;
each dead worker is replaced at once. Then the whole fleet dies, a new
one retries every unfinished send job but one (an RQ retry), and the reconcile cron finishes that
one and whatever is still UNKNOWN. Counted at the emulator's ledger (DESIGN §5.4, §5.6;
market.md §3.1, §3.7):

- every (account, tag) was booked at most once, and nothing was booked that no child stands for;
- every child is at the broker (PLACED/OPEN/PARTIAL/COMPLETE, with the ledger's order id) or
  definitively REJECTED/FAILED with a reason, and then not booked, unless the broker itself booked
  and rejected it (Kite's RMS does, with an order id) and the child carries that id;
- none is left NEW, SUBMITTING or UNKNOWN;
- no send job failed (a killed worker's job is abandoned, not failed).

The faults stay on to the end, reconciliation included. Two things stand in for waiting, to keep
the run under a minute: reconcile is called with `now` shifted past STUCK_AFTER, and after the
whole fleet is killed the child locks the dead processes held are deleted, as their LOCK_SECONDS
expiry would (no live process holds one then). The send deadline is set past that shifted clock
(SEND_DEADLINE): with the desk's 30 s, every provably absent child would be failed "not sent in
time" instead of sent again, and the re-send path this test counts at the broker would go untried
(tests/orders/test_deadline.py covers the deadline).

FANOUT_CHAOS_SEED=<n> replays another schedule of faults and kills (timing still varies run to run).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis as redis_lib
import sqlalchemy as sa
from rq.job import Job, JobStatus

from tests.emulators.common import FAULTS, EmulatorServer, FaultPlan
from tests.emulators.kite import KiteEmulator
from webapp.brokers.base import BrokerSession
from webapp.entrypoint import worker_command
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.models import Client, Order
from webapp.orders.batches import enqueue_send
from webapp.tasks import QUEUE_ORDERS, enqueue
from webapp.timeutil import utcnow
from webapp.trading import engine, states, sync
from webapp.trading.context import build_context
from webapp.trading.sessions import store_session
from webapp.vault import current_vault

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("FANOUT_CHAOS_SEED", "5150"))
CLIENTS = 36
POOR_CLIENTS = 4  # too little cash: Kite's RMS books the order and rejects it
BATCHES = 6
WORKERS = 3
BATCH_EVERY = 1.5  # seconds between tickets while the killing goes on
KILLED_MID_SEND = 4  # send jobs whose worker dies while the job runs
KILL_AFTER = (0.1, 1.0)  # seconds into the job: at its start, mid-send, or as its last answers come
IDLE_KILL_EVERY = (1.5, 3.0)  # and now and then a worker dies between jobs
CHAOS_SECONDS = (8.0, 25.0)  # at least, at most
DRAIN_SECONDS = 30.0  # these three bound a failing run; a passing one takes a fraction of them
RECONCILE_SECONDS = 40.0
SYNC_SECONDS = 30.0
PLACE_FAULTS = {
    "timeout_after_accept": 0.1,
    "drop_after_accept": 0.1,
    "error_5xx": 0.05,
    "error_5xx_after_accept": 0.05,
    "burst_429": 0.1,
}
READ_FAULTS = {"timeout_after_accept": 0.02, "drop_after_accept": 0.03, "error_5xx": 0.03, "burst_429": 0.03}
BOOKED = states.AT_BROKER | {states.COMPLETE, states.CANCELLED}  # the broker has it
SEND_DEADLINE = 300  # seconds: past the clock reconcile is run with (see the docstring)


@dataclass
class ChaosPlan(FaultPlan):
    """The seeded plan with lighter faults on reads than on places, counting what it injected."""

    read_rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.injected: Counter[tuple[str, str]] = Counter()

    def decide(self, kind: str) -> str | None:
        rates = {"place": self.rates, "read": self.read_rates}.get(kind, {})
        with self._lock:
            roll, acc = self._rng.random(), 0.0
            for fault in FAULTS:
                acc += rates.get(fault, 0.0)
                if roll < acc:
                    self.injected[(kind, fault)] += 1
                    return fault
        return None


# ---------------------------------------------------------------- worker processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


class Fleet:
    """The Procfile's `orders` workers (jobs.worker.OrdersWorker: each job runs in the worker
    process), each in its own session (process group)."""

    def __init__(self, env: dict[str, str], log, redis) -> None:
        self.env, self.log, self.redis = env, log, redis
        self.live: list[WorkerProcess] = []
        self.started = 0
        self.kills: Counter[str] = Counter()

    def start(self) -> WorkerProcess:
        self.started += 1
        name = f"chaos-{os.getpid()}-{self.started}"
        process = subprocess.Popen(
            worker_command("orders", name),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(name, process)
        self.live.append(worker)
        return worker

    def current_job(self, worker: WorkerProcess) -> str | None:
        """The job the worker is running (RQ's worker hash), or None between jobs."""
        job_id = self.redis.hget(f"rq:worker:{worker.name}", "current_job")
        return job_id.decode() if job_id else None

    def kill(self, worker: WorkerProcess) -> bool:
        """SIGKILL the worker's process group (a job in flight dies mid-call). True if it was running a job."""
        try:
            os.killpg(worker.pid, signal.SIGSTOP)  # frozen, it cannot take the next job behind our back
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 2
        while (stat := _proc_stat(worker.pid)) and stat[0] not in "TtZX" and time.monotonic() < deadline:
            time.sleep(0.005)
        busy = self.current_job(worker) is not None
        _killpg(worker.pid)
        worker.process.wait(timeout=10)
        self.live.remove(worker)
        self.kills["mid-job" if busy else "idle"] += 1
        return busy

    def stop(self) -> None:
        for worker in list(self.live):
            self.kill(worker)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def worker_env(app, emulator_url: str, instance: Path, settings: dict[str, str] | None = None) -> dict[str, str]:
    """The workers' environment; `settings` adds other brokers' endpoints (a mixed desk)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        SECRET_KEY=app.config["SECRET_KEY"],
        FANOUT_ENCRYPTION_KEYS=app.config["FANOUT_ENCRYPTION_KEYS"][0],
        FANOUT_TESTING="1",
        FANOUT_INSTANCE=str(instance),
        PAPER_ALWAYS_OPEN="1",
        KITE_API_URL=emulator_url,
        KITE_LOGIN_URL=emulator_url,
        BROKER_TIMEOUT_SECONDS="1",
        SEND_DEADLINE_SECONDS=str(SEND_DEADLINE),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings or {})
    return env


# ---------------------------------------------------------------- the desk


def kite_client(app, factory, emulator: KiteEmulator, name: str, cash: str) -> Client:
    creds = emulator.add_account(cash=cash)
    client = factory.client(
        name,
        broker="kite",
        code=creds["user_id"],
        credentials={"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
    )
    with app.app_context():
        stored = db.session.get(Client, client.id)
        store_session(stored, BrokerSession(creds["access_token"], utcnow() + timedelta(hours=8)), current_vault())
        db.session.commit()
    return client


def children(app) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            sa.select(
                Order.id,
                Client.client_code,
                Order.tag,
                Order.status,
                Order.broker_order_id,
                Order.reason,
                Order.attempts,
                Order.batch_id,
            )
            .join(Client, Order.client_id == Client.id)
            .order_by(Order.id)
        ).all()


def status_counts(app) -> Counter[str]:
    return Counter(child.status for child in children(app))


def orders_jobs_done(app, job_ids: list[str], live: set[str]) -> bool:
    """No send job is waiting or running in a live worker (the killed ones stay 'started'). A job
    RQ scheduled for a retry counts as done: these workers run without the scheduler, and the test
    re-enqueues the send itself, standing in for that retry."""
    with app.app_context():
        for job in Job.fetch_many(job_ids, connection=get_rq_redis()):
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status in (JobStatus.QUEUED, JobStatus.DEFERRED):
                return False
            if status == JobStatus.STARTED and job.worker_name in live:
                return False
    return True


def expire_dead_locks(app) -> int:
    """What LOCK_SECONDS would do: free the child locks the killed processes held."""
    with app.app_context():
        redis = get_redis()
        keys = list(redis.scan_iter("fanout:lock:child:*"))
        if keys:
            redis.delete(*keys)
    return len(keys)


# ---------------------------------------------------------------- the test


def test_killed_workers_and_a_faulty_broker_place_every_child_once(app, factory, tmp_path):
    rng = random.Random(SEED)
    plan = ChaosPlan(seed=SEED, hang_seconds=2.0, rates=PLACE_FAULTS, read_rates=READ_FAULTS)
    log_path = tmp_path / "workers.log"
    report: dict[str, object] = {"seed": SEED, "phases": {}}
    with (
        EmulatorServer(KiteEmulator(faults=plan)) as server,
        open(log_path, "ab") as log,
        redis_lib.Redis.from_url(app.config["REDIS_URL"]) as redis,
    ):
        emulator = server.app
        app.config.update(
            KITE_API_URL=server.url,
            KITE_LOGIN_URL=server.url,
            BROKER_TIMEOUT_SECONDS=1,
            SEND_DEADLINE_SECONDS=SEND_DEADLINE,
        )
        trader = factory.user("tara", role="trader")
        instrument = factory.instrument("INFY", 1594, price="1512.40", tick="0.10", band="10")
        clients = [
            kite_client(app, factory, emulator, f"K{n:02d}", "100" if n < POOR_CLIENTS else "1000000")
            for n in range(CLIENTS)
        ]
        fleet = Fleet(worker_env(app, server.url, tmp_path), log, redis)
        phase = Phases(report)
        try:
            for _ in range(WORKERS):
                fleet.start()
            with phase("chaos"):
                job_ids = chaos(app, factory, trader, clients, instrument, fleet, rng, report)
            with phase("restart"):
                job_ids += restart(app, fleet, job_ids, rng, report)
            with phase("reconcile"):
                reconcile_all(app, report)
            with phase("sync"):
                sync_all(app, clients)
            report["injected"] = dict(plan.injected)
            check_against_ledger(app, emulator, report)
        except BaseException:
            fleet.stop()
            print(f"chaos report: {report}\n--- worker log (tail) ---\n{_tail(log_path)}")
            raise
        finally:
            fleet.stop()
        print(f"chaos report: {report}")


class Phases:
    """How long each phase took, for the report."""

    def __init__(self, report) -> None:
        self.report = report

    @contextmanager
    def __call__(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.report["phases"][name] = round(time.monotonic() - started, 1)


def chaos(app, factory, trader, clients, instrument, fleet: Fleet, rng: random.Random, report) -> list[str]:
    """Tickets keep coming while workers die. KILLED_MID_SEND of the send jobs, chosen by the seed,
    lose their worker at a random moment KILL_AFTER into the job; every IDLE_KILL_EVERY an idle worker dies too.
    A dead worker is replaced at once."""
    doomed = set(rng.sample(range(1, BATCHES + 1), KILLED_MID_SEND))  # batch numbers
    job_ids: list[str] = []
    strikes: dict[int, float] = {}  # batch number -> when the worker running its send job dies
    mid_send = 0
    start = time.monotonic()
    next_batch, next_idle_kill = start, start + rng.uniform(*IDLE_KILL_EVERY)
    while True:
        now = time.monotonic()
        elapsed = now - start
        if len(job_ids) < BATCHES and now >= next_batch:
            job_ids.append(new_batch(app, factory, trader, clients, instrument, len(job_ids)))
            next_batch = now + BATCH_EVERY
        running = {w.name: fleet.current_job(w) for w in fleet.live}
        for worker in list(fleet.live):
            number = _batch_number(running[worker.name], job_ids)
            if number in doomed:
                strike = strikes.setdefault(number, now + rng.uniform(*KILL_AFTER))
                if now >= strike:
                    doomed.discard(number)
                    mid_send += fleet.kill(worker)
                    fleet.start()
        for number in [n for n in doomed if n in strikes and _batch_number_running(n, running, job_ids) is None]:
            doomed.discard(number)  # the job ended before its moment came: a kill missed
        if now >= next_idle_kill:
            idle = [w for w in fleet.live if running.get(w.name) is None]
            if idle:
                fleet.kill(rng.choice(idle))
                fleet.start()
            next_idle_kill = now + rng.uniform(*IDLE_KILL_EVERY)
        settled = len(job_ids) == BATCHES and not doomed
        if (elapsed >= CHAOS_SECONDS[0] and settled) or elapsed >= CHAOS_SECONDS[1]:
            break
        time.sleep(0.02)
    report["kills"] = dict(fleet.kills)
    report["workers started"] = fleet.started
    report["after chaos"] = dict(status_counts(app))
    assert mid_send >= KILLED_MID_SEND - 1, (
        f"only {mid_send} kills hit a send job in flight: the chaos did not bite ({report})"
    )
    return job_ids


def _batch_number(job_id: str | None, job_ids: list[str]) -> int | None:
    """1 for the first ticket's send job, ... (None for any other job)."""
    return job_ids.index(job_id) + 1 if job_id in job_ids else None


def _batch_number_running(number: int, running: dict[str, str | None], job_ids: list[str]) -> str | None:
    """The name of the worker running that ticket's send job, if one is."""
    return next((name for name, job_id in running.items() if _batch_number(job_id, job_ids) == number), None)


def restart(app, fleet: Fleet, job_ids: list[str], rng: random.Random, report) -> list[str]:
    """The whole fleet dies at once; new workers start, and every batch with a child still in
    flight but one gets its send job again (an RQ retry). That one, cut off mid-call if one was,
    is left to the reconcile cron. Returns the new jobs' ids."""
    fleet.stop()
    report["dead locks expired"] = expire_dead_locks(app)
    for _ in range(WORKERS):
        fleet.start()
    retries = []
    with app.app_context():
        batch_ids = (
            db.session.execute(
                sa.select(Order.batch_id).where(Order.status.in_(states.IN_FLIGHT)).distinct().order_by(Order.batch_id)
            )
            .scalars()
            .all()
        )
        if len(batch_ids) > 1:  # best one whose worker died mid-call, with SUBMITTING children
            cut_off = (
                db.session.execute(
                    sa.select(Order.batch_id)
                    .where(Order.status == states.SUBMITTING)
                    .distinct()
                    .order_by(Order.batch_id)
                )
                .scalars()
                .all()
            )
            left = rng.choice(cut_off or batch_ids)
            batch_ids.remove(left)
            report["left to reconcile"] = dict(
                Counter(
                    db.session.execute(
                        sa.select(Order.status).where(Order.batch_id == left, Order.status.in_(states.IN_FLIGHT))
                    ).scalars()
                )
            )
        for batch_id in batch_ids:
            retries.append(
                enqueue(
                    "jobs.orders.send_batch",
                    batch_id,
                    queue_name=QUEUE_ORDERS,
                    job_id=f"send-batch-{batch_id}-retry",
                    result_ttl=300,
                    failure_ttl=3600,
                ).id
            )
    deadline = time.monotonic() + DRAIN_SECONDS
    while not orders_jobs_done(app, job_ids + retries, {w.name for w in fleet.live}):
        assert all(w.process.poll() is None for w in fleet.live), "a worker exited on its own"
        assert time.monotonic() < deadline, f"the new workers did not finish the send jobs in {DRAIN_SECONDS} s"
        time.sleep(0.1)
    report["after restart"] = dict(status_counts(app))
    failures = unexplained_failures(app, job_ids + retries)
    assert not failures, "send jobs failed, not by our kills:\n" + "\n".join(failures)
    return retries


def new_batch(app, factory, trader, clients, instrument, n: int) -> str:
    """A ticket for every client; the third is a LIMIT order (rests OPEN) with a few off-tick children
    the broker refuses outright (nothing booked)."""
    if n == 2:
        batch = factory.batch(trader, clients, instrument, order_type="LIMIT", price=Decimal("1500.00"))
        with app.app_context():
            for order in db.session.execute(
                sa.select(Order).where(Order.batch_id == batch.id).order_by(Order.id).limit(3)
            ).scalars():
                order.price = Decimal("1500.05")
            db.session.commit()
    else:
        batch = factory.batch(trader, clients, instrument)
    with app.app_context():
        enqueue_send(batch.id)
    return f"send-batch-{batch.id}"


def unexplained_failures(app, job_ids: list[str]) -> list[str]:
    """A killed worker's job is abandoned ('started' forever), never failed: a failed send job is a bug to see."""
    found = []
    with app.app_context():
        for job in Job.fetch_many(job_ids, connection=get_rq_redis()):
            if job is None or job.get_status(refresh=False) != JobStatus.FAILED:
                continue
            result = job.latest_result()
            text = result.exc_string if result is not None else "(no result)"
            found.append(f"{job.id}: {(text or '').strip().splitlines()[-1:]}")
    return found


def reconcile_all(app, report) -> None:
    """The reconcile cron, run here with the clock shifted past STUCK_AFTER, until nothing is in
    flight or RECONCILE_SECONDS pass (what is left then is reported by the ledger check)."""
    deadline = time.monotonic() + RECONCILE_SECONDS
    rounds: list[dict[str, int]] = []
    while time.monotonic() < deadline:
        with app.app_context():
            ctx = build_context(app)
            rounds.append(engine.reconcile(ctx, now=utcnow() + engine.STUCK_AFTER + timedelta(seconds=1)))
        if not any(s in states.IN_FLIGHT for s in status_counts(app)):
            break
        time.sleep(0.2)
    report["reconcile rounds"] = rounds if len(rounds) <= 5 else rounds[:3] + [f"... {len(rounds)} rounds"]
    assert all("busy" not in r for r in rounds), f"a child lock was held with no worker sending: {rounds}"


def sync_all(app, clients) -> None:
    """The sync job for every client, so the broker's verdicts (fills, RMS rejections) reach the children."""
    deadline = time.monotonic() + SYNC_SECONDS
    pending = [c.id for c in clients]
    while pending and time.monotonic() < deadline:
        with app.app_context():
            ctx = build_context(app)
            pending = [client_id for client_id in pending if not sync.sync_client(client_id, ctx)]
        if pending:
            time.sleep(1.1)  # a sync is 5 reads; faster retries would hold Kite's 10 reads/s window shut
    assert not pending, f"{len(pending)} clients could not be synced in {SYNC_SECONDS} s"


def check_against_ledger(app, emulator: KiteEmulator, report) -> None:
    entries = emulator.ledger.entries()
    booked = Counter((e.account, e.tag) for e in entries)
    order_ids = {(e.account, e.tag): e.order_id for e in entries}
    rows = children(app)
    report["final"] = dict(Counter(r.status for r in rows))
    report["failed"] = [f"{r.id}: {r.reason} (attempts={r.attempts})" for r in rows if r.status == states.FAILED]
    report["booked"] = len(entries)

    duplicates = {key: n for key, n in booked.items() if n > 1}
    assert not duplicates, f"booked more than once at the broker: {duplicates}"
    ours = {(r.client_code, r.tag) for r in rows}
    assert set(booked) <= ours, f"booked with no child behind it: {set(booked) - ours}"
    assert len(rows) == CLIENTS * BATCHES

    problems = []
    for r in rows:
        key = (r.client_code, r.tag)
        if r.status in states.IN_FLIGHT:
            problems.append(f"child {r.id} left {r.status}: {r.reason!r}")
        elif r.status in BOOKED:
            if order_ids.get(key) != r.broker_order_id or not r.broker_order_id:
                problems.append(
                    f"child {r.id} {r.status} as {r.broker_order_id} but the ledger has {order_ids.get(key)}"
                )
        elif r.status in (states.REJECTED, states.FAILED):
            if not r.reason:
                problems.append(f"child {r.id} {r.status} with no reason")
            if r.broker_order_id and order_ids.get(key) != r.broker_order_id:
                problems.append(f"child {r.id} rejected as {r.broker_order_id}, ledger {order_ids.get(key)}")
            if not r.broker_order_id and key in booked:
                problems.append(f"child {r.id} {r.status} ({r.reason!r}) but booked as {order_ids[key]}")
        else:
            problems.append(f"child {r.id} in unexpected state {r.status}")
    assert not problems, "\n".join(problems)

    # the run exercised what it claims to: unclear answers, 429s, RMS rejects, refusals, resends
    injected = emulator.faults.injected
    assert (
        sum(injected[("place", f)] for f in ("timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"))
        >= 5
    ), injected
    assert injected[("place", "burst_429")] >= 1 and injected[("place", "error_5xx")] >= 1, injected
    assert sum(1 for r in rows if r.status == states.REJECTED and r.broker_order_id) >= POOR_CLIENTS
    assert sum(1 for r in rows if r.status == states.REJECTED and not r.broker_order_id) >= 3
    assert any(r.attempts > 1 for r in rows)


def _tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no worker log)"

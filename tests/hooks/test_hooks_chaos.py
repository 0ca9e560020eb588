"""Chaos for webhooks, with real processes: the Procfile's `strategies` workers (which run the hook job)
are SIGKILLed again and again while alerts arrive, each replaced at once; an `orders` worker sends. The
sweep (jobs.hooks.sweep, run here as cron would) queues again what a dead worker left RECEIVED.
Counted at the paper broker's ledger: every alert ends PROCESSED, DUPLICATE or EXPIRED (none RECEIVED);
each PROCESSED alert has exactly one batch, every child of it booked exactly once (by tag); an EXPIRED
or DUPLICATE alert has no batch and nothing booked for it."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter

import redis as redis_lib
import sqlalchemy as sa

from jobs.context import use_app
from tests.chaos.test_chaos import ROOT, Fleet, WorkerProcess, worker_env
from webapp.entrypoint import worker_command
from webapp.extensions import db
from webapp.models import Batch, HookAlert, Order
from webapp.models.paper import PaperOrder
from webapp.trading import states

ALERTS = 24
SYMBOLS = ("SBIN", "INFY")


class RoleFleet(Fleet):
    def __init__(self, env, log, redis, role: str) -> None:
        super().__init__(env, log, redis)
        self.role = role

    def start(self) -> WorkerProcess:
        self.started += 1
        name = f"hooks-chaos-{self.role}-{self.started}-{random.randrange(10**6)}"
        process = subprocess.Popen(
            worker_command(self.role, name),
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


def _settled(app) -> bool:
    with app.app_context():
        try:
            waiting = db.session.execute(
                sa.select(sa.func.count()).select_from(HookAlert).where(HookAlert.status == "RECEIVED")
            ).scalar_one()
            unsent = db.session.execute(
                sa.select(sa.func.count()).select_from(Order).where(Order.status.in_(states.IN_FLIGHT))
            ).scalar_one()
            return waiting == 0 and unsent == 0
        finally:
            db.session.remove()


def test_killed_hook_workers_act_on_every_alert_exactly_once(app, client, desk, tmp_path):
    from jobs import hooks as hook_jobs

    rng = random.Random(7)
    _, secret = desk.hook(dedupe_seconds=5, quantities={}, client_ids=[c.id for c in desk.clients], sizing="fixed")
    env = worker_env(app, "http://127.0.0.1:9", tmp_path)
    report: Counter[str] = Counter()
    with open(tmp_path / "workers.log", "ab") as log, redis_lib.Redis.from_url(app.config["REDIS_URL"]) as redis:
        strategies, orders = RoleFleet(env, log, redis, "strategies"), RoleFleet(env, log, redis, "orders")
        try:
            for _ in range(2):
                strategies.start()
            orders.start()
            statuses = []
            for n in range(ALERTS):
                body = {"ticker": SYMBOLS[n % 2], "exchange": "NSE", "action": "buy", "contracts": str(n + 1)}
                if n % 6 == 5:  # now and then TradingView's resend of the alert before
                    body["contracts"] = str(n)
                    body["ticker"] = SYMBOLS[(n - 1) % 2]
                reply = client.post(f"/hooks/{secret}", json=body)
                assert reply.status_code == 200, reply.json
                statuses.append(reply.json["status"])
                if rng.random() < 0.5:  # a strategies worker dies (mid-job or idle) and is replaced
                    report["killed-mid-job" if strategies.kill(rng.choice(strategies.live)) else "killed-idle"] += 1
                    strategies.start()
                time.sleep(rng.uniform(0, 0.05))
            report["duplicates"] = statuses.count("DUPLICATE")
            use_app(app)
            deadline = time.monotonic() + 120
            while not _settled(app) and time.monotonic() < deadline:
                report["requeued"] += hook_jobs.sweep()
                time.sleep(1)
        finally:
            strategies.stop()
            orders.stop()
    print(f"hooks chaos report: {dict(report)}")

    with app.app_context():
        alerts = db.session.execute(sa.select(HookAlert).order_by(HookAlert.id)).scalars().all()
        assert len(alerts) == ALERTS
        assert {a.status for a in alerts} <= {"PROCESSED", "DUPLICATE", "EXPIRED"}, [(a.id, a.status) for a in alerts]
        assert sum(a.status == "DUPLICATE" for a in alerts) == ALERTS // 6
        batches = db.session.execute(sa.select(Batch)).scalars().all()
        processed = [a for a in alerts if a.status == "PROCESSED"]
        assert sorted(a.batch_id for a in processed) == sorted(b.id for b in batches)  # one batch per alert
        children = db.session.execute(sa.select(Order)).scalars().all()
        booked = Counter(tag for (tag,) in db.session.execute(sa.select(PaperOrder.tag)).all())
        assert all(count == 1 for count in booked.values()), booked.most_common(3)
        assert set(booked) == {c.tag for c in children if c.status not in (states.FAILED,)}
        assert all(c.status in states.AT_BROKER | {states.COMPLETE} for c in children), Counter(
            c.status for c in children
        )
        by_alert = {a.batch_id: a for a in processed}
        for child in children:  # each child is the quantity its alert asked for
            alert = by_alert[child.batch_id]
            assert child.quantity == int(json.loads(alert.payload)["contracts"])  # sized from the alert

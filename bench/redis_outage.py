"""How long a web request waits while Redis is away: `python -m bench.redis_outage`.

In process (Flask's test client, SQLite in a temp dir, a redis-server of its own), it times the
desk, a client's page and a ticket POST while Redis is paused (SIGSTOP: connections hang until a
timeout) and stopped (connections refused). Each request is timed after the web client's breaker
has cooled down (webapp/redisconn.py), so it is a fresh attempt that waits the full timeout: the
worst case, the first request after an outage begins. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
import uuid

from bench.harness import emit, log

PASSWORD = "Bench-pass-" + "42"


def _desk(redis_url: str, tmp: str):
    from webapp import create_app
    from webapp.brokers.paper import ensure_account
    from webapp.extensions import db
    from webapp.models import Client, Instrument, User
    from webapp.security import hash_password
    from webapp.vault import generate_key

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/outage.db",
            "REDIS_URL": redis_url,
            "SECRET_KEY": "bench",
            "FANOUT_ENCRYPTION_KEYS": [generate_key()],
            "WTF_CSRF_ENABLED": False,
            "FANOUT_AUDIT_KEYS": ["bench-audit-key-" + "x" * 32],
            "SESSION_COOKIE_SECURE": False,
            "PAPER_ALWAYS_OPEN": True,
            "LOGIN_RATE_LIMIT": "1000 per minute",
        }
    )
    with app.app_context():
        db.create_all()
        instrument = Instrument(
            instrument_token=1594 * 256 + 1,
            exchange_token=1594,
            exchange="NSE",
            tradingsymbol="INFY",
            name="INFY",
            tick_size=1,
            lot_size=1,
            last_price=1548,
        )
        clients = [Client(name=f"Client {n}", broker="paper", client_code=f"PA{n:04d}") for n in range(2)]
        db.session.add_all([instrument, *clients])
        db.session.flush()
        db.session.add(User(username="tara", role="admin", password_hash=hash_password(PASSWORD)))
        db.session.commit()
        for client in clients:
            ensure_account(client.client_code)
        return app, instrument.id, [c.id for c in clients]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    from webapp.embedded_redis import EmbeddedRedis
    from webapp.redisconn import COOL_DOWN_SECONDS, WAIT_SECONDS, reset_breaker

    tmp = tempfile.mkdtemp(prefix="fanout-outage-")
    server = EmbeddedRedis().start()
    try:
        app, instrument_id, client_ids = _desk(server.url, tmp)
        http = app.test_client()
        assert http.post("/login", data={"username": "tara", "password": PASSWORD}).status_code == 302
        ticket = {
            "instrument_id": instrument_id,
            "action": "BUY",
            "product": "MIS",
            "order_type": "MARKET",
            "validity": "DAY",
            **{f"qty_{c}": "1" for c in client_ids},
        }
        requests = {
            "desk": lambda: http.get("/"),
            "client page": lambda: http.get(f"/clients/{client_ids[0]}"),
            "ticket POST": lambda: http.post("/orders/new", data={**ticket, "ticket_id": str(uuid.uuid4())}),
        }
        results = {}
        for mode in ("paused", "stopped"):
            if mode == "paused":
                os.kill(server.process.pid, signal.SIGSTOP)
            else:
                os.kill(server.process.pid, signal.SIGCONT)
                server.process.kill()
                server.process.wait()
            for name, request in requests.items():
                times, statuses = [], set()
                for _ in range(args.samples):
                    reset_breaker()  # a fresh attempt each time: the worst case
                    started = time.perf_counter()
                    statuses.add(request().status_code)
                    times.append((time.perf_counter() - started) * 1000)
                results[f"{mode} {name}"] = {
                    "median_ms": round(statistics.median(times)),
                    "max_ms": round(max(times)),
                    "statuses": sorted(statuses),
                }
                log(f"{mode} {name}: {results[f'{mode} {name}']}")
        emit(
            {
                "benchmark": "redis_outage",
                "wait_seconds": WAIT_SECONDS,
                "cool_down_seconds": COOL_DOWN_SECONDS,
                "samples": args.samples,
                "results": results,
            }
        )
    finally:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


if __name__ == "__main__":
    main()

"""What the live-data benchmarks (reprice, feed, pages) share: a throwaway desk (temp dir, secrets,
database migrated with `flask db upgrade`, embedded or external Redis), fast bulk seeding (Core
executemany: 50,000 positions in seconds), logins, and per-process memory and CPU.

Process control, percentiles and the machine description come from bench/harness.py.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from bench.harness import BIN, ROOT, log

PASSWORD = "Bench-pass-" + "42"
USER_AGENT = "fanout-bench/1"  # strong session protection binds the session to the User-Agent


# ---------------------------------------------------------------- a throwaway desk


def prepare(args, tmp: Path, started: dict) -> dict[str, str]:
    """Environment for this process and every child: secrets, database, Redis; migrates the database.
    `args` needs database_url and redis_url (None: temp SQLite file / embedded Redis)."""
    from webapp.vault import generate_key

    (tmp / "instance").mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "FANOUT_INSTANCE": str(tmp / "instance"),
            "SECRET_KEY": secrets.token_hex(32),
            "FANOUT_ENCRYPTION_KEYS": generate_key(),
            "FANOUT_AUDIT_KEYS": secrets.token_hex(32),
            "SESSION_COOKIE_SECURE": "0",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}",
            "LOGIN_RATE_LIMIT": "10000 per minute",  # the bench logs in from one address many times
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        }
    )
    for key in ("FANOUT_DEMO", "FANOUT_TESTING", "WEB_CONCURRENCY", "WEB_THREADS"):
        env.pop(key, None)
    import redis as redis_lib

    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        redis_lib.Redis.from_url(args.redis_url).flushdb()
        log(f"redis: {args.redis_url} (flushed)")
    else:
        from webapp.embedded_redis import EmbeddedRedis

        embedded = started["redis"] = EmbeddedRedis(data_dir=tmp / "redis")
        embedded.start()
        env["REDIS_URL"] = embedded.url
        log(f"redis: embedded at {embedded.url}")
    os.environ.update(env)
    for key in ("FANOUT_DEMO", "FANOUT_TESTING", "WEB_CONCURRENCY", "WEB_THREADS"):
        os.environ.pop(key, None)
    t = time.perf_counter()
    with open(tmp / "migrate.log", "wb") as err:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    log(f"migrated {redact(env['DATABASE_URL'])} in {time.perf_counter() - t:.1f} s")
    return env


def make_app():
    import logging

    logging.basicConfig(level=logging.WARNING)  # the app's basicConfig is then a no-op
    from webapp import create_app

    return create_app()


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]+@", r"//\1:***@", url)


def database_version(app) -> str:
    import sqlalchemy as sa

    from webapp.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            return "sqlite " + db.session.execute(sa.text("select sqlite_version()")).scalar_one()
        return db.session.execute(sa.text("select version()")).scalar_one().split(" on ")[0]


# ---------------------------------------------------------------- seeding (inside an app context)


@dataclass(frozen=True)
class Inst:
    id: int
    instrument_token: int
    exchange: str
    tradingsymbol: str
    tick_size: Decimal
    last_price: Decimal
    band_pct: Decimal | None


def _insert(table, rows: list[dict], chunk: int = 5000) -> None:
    """Core executemany in chunks (SQLAlchemy's insertmanyvalues batches them further)."""
    from webapp.extensions import db

    for i in range(0, len(rows), chunk):
        db.session.execute(table.insert(), rows[i : i + chunk])


def seed_instruments(n: int, rng: random.Random) -> list[Inst]:
    """N synthetic NSE equities: tick 0.05, prices ₹20–₹5,000 on the tick grid, bands 2–20 %."""
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Instrument

    rows = []
    for i in range(n):
        ticks = rng.randint(400, 100_000)  # ₹20.00 … ₹5,000.00 in 0.05 steps
        exchange_token = 50_000 + i
        rows.append(
            {
                "instrument_token": exchange_token * 256 + 1,
                "exchange_token": exchange_token,
                "exchange": "NSE",
                "tradingsymbol": f"BENCH{i:04d}",
                "name": f"BENCH STOCK {i:04d}",
                "instrument_type": "EQ",
                "segment": "NSE",
                "tick_size": Decimal("0.05"),
                "lot_size": 1,
                "last_price": Decimal(ticks) * Decimal("0.05"),
                "band_pct": Decimal(rng.choice((2, 5, 10, 20))),
            }
        )
    _insert(Instrument.__table__, rows)
    db.session.commit()
    t = Instrument
    return [
        Inst(*row)
        for row in db.session.execute(
            sa.select(
                t.id, t.instrument_token, t.exchange, t.tradingsymbol, t.tick_size, t.last_price, t.band_pct
            ).order_by(t.id)
        ).all()
    ]


def seed_clients(n: int, broker: str = "paper") -> list[int]:
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Client

    _insert(
        Client.__table__,
        [{"name": f"Bench client {i:04d}", "broker": broker, "client_code": f"BC{i:05d}"} for i in range(n)],
    )
    db.session.commit()
    return list(db.session.execute(sa.select(Client.id).order_by(Client.id)).scalars())


def seed_positions(
    client_ids: list[int], instruments: list[Inst], per_client: int, rng: random.Random, marked: bool = False
) -> int:
    """per_client open positions for every client, each in a different instrument (product MIS),
    long or short, bought within ±3 % of the master price. marked: last_price and unrealized set
    as if repriced at the master price (a desk page has something to show)."""
    from webapp.extensions import db
    from webapp.models import Position
    from webapp.trading.ledger import Book, unrealized

    if per_client > len(instruments):
        raise ValueError(f"{per_client} positions per client need as many instruments (have {len(instruments)})")
    rows = []
    for cid in client_ids:
        for inst in rng.sample(instruments, per_client):
            qty = rng.randint(1, 500) * rng.choice((1, -1))
            ticks = int(inst.last_price / inst.tick_size * Decimal(str(rng.uniform(0.97, 1.03))))
            avg = Decimal(ticks) * inst.tick_size
            cost = avg * abs(qty)
            row = {
                "client_id": cid,
                "instrument_id": inst.id,
                "product": "MIS",
                "quantity": qty,
                "cost": cost,
                "average_price": avg,
                "realized_pnl": Decimal(rng.randint(-50_000, 50_000)),
                "buy_quantity": max(qty, 0),
                "sell_quantity": max(-qty, 0),
                "last_price": None,
                "unrealized_pnl": Decimal(0),
            }
            if marked:
                row["last_price"] = inst.last_price
                row["unrealized_pnl"] = unrealized(Book(qty, cost), inst.last_price)
            rows.append(row)
    _insert(Position.__table__, rows)
    db.session.commit()
    return len(rows)


def seed_funds(client_ids: list[int], rng: random.Random) -> None:
    from webapp.extensions import db
    from webapp.models import FundsSnapshot

    _insert(
        FundsSnapshot.__table__,
        [
            {
                "client_id": cid,
                "available_cash": Decimal(rng.randint(100_000, 5_000_000)),
                "margin_used": Decimal(rng.randint(0, 500_000)),
                "collateral": Decimal(0),
            }
            for cid in client_ids
        ],
    )
    db.session.commit()


def seed_open_orders(client_ids: list[int], instruments: list[Inst], per_client: int, rng: random.Random) -> int:
    """per_client LIMIT orders resting at the broker (status OPEN) for every client."""
    from webapp.extensions import db
    from webapp.models import Order

    rows, n = [], 0
    for cid in client_ids:
        for inst in rng.sample(instruments, per_client):
            n += 1
            rows.append(
                {
                    "client_id": cid,
                    "instrument_id": inst.id,
                    "side": rng.choice(("BUY", "SELL")),
                    "quantity": rng.randint(1, 100),
                    "product": "MIS",
                    "order_type": "LIMIT",
                    "price": inst.last_price,
                    "validity": "DAY",
                    "tag": f"b{n:09d}",
                    "status": "OPEN",
                    "broker_order_id": f"BO{n:012d}",
                    "attempts": 1,
                }
            )
    _insert(Order.__table__, rows)
    db.session.commit()
    return len(rows)


def seed_user(username: str, role: str, client_ids: list[int] = ()) -> int:
    from webapp.extensions import db
    from webapp.models import User, user_clients
    from webapp.security import hash_password
    from webapp.timeutil import utcnow

    user = User(
        username=username, role=role, active=True, password_hash=hash_password(PASSWORD), password_changed_at=utcnow()
    )
    db.session.add(user)
    db.session.flush()
    if client_ids:
        _insert(user_clients, [{"user_id": user.id, "client_id": cid} for cid in client_ids])
    db.session.commit()
    return user.id


def quote_at(inst: Inst, price: Decimal, now=None):
    """The simulator's quote shape (5 levels of depth, band, OHLC) at a given last price."""
    from webapp.marketdata.simulator import static_quote
    from webapp.timeutil import utcnow

    return replace(static_quote(inst, now or utcnow()), last_price=price)


# ---------------------------------------------------------------- talking to the web process


def hidden_inputs(html: str) -> dict[str, str]:
    """Hidden inputs of a page (csrf_token)."""
    from html.parser import HTMLParser

    values: dict[str, str] = {}

    class Inputs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "input" and attrs.get("name") and attrs.get("type") == "hidden":
                values.setdefault(attrs["name"], attrs.get("value") or "")

    Inputs().feed(html)
    return values


def login(base: str, username: str):
    """A requests.Session logged in as `username` (same User-Agent on every later request)."""
    import requests

    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    page = http.get(f"{base}/login", timeout=30)
    token = hidden_inputs(page.text).get("csrf_token", "")
    r = http.post(
        f"{base}/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    if r.status_code != 302:
        raise RuntimeError(f"login as {username} failed: HTTP {r.status_code}")
    return http


def cookie_header(http) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def read_access_log(path: Path, offset: int) -> list[dict]:
    """gunicorn access-log lines written after `offset` (webapp/gunicorn_conf.py's format)."""
    pattern = re.compile(r'method=(\S+) path="([^"]*)" status=(\d+) bytes=(\S+) ms=(\d+)')
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return [
        {"method": m, "path": p, "status": int(s), "bytes": b, "ms": int(ms)}
        for m, p, s, b, ms in pattern.findall(text)
    ]


# ---------------------------------------------------------------- memory and CPU


def processes_of(pid: int) -> list[dict]:
    """Each process of the tree rooted at pid: its pid, RSS (MiB) and CPU seconds so far."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in tree:
        try:
            cpu = proc.cpu_times()
            out.append(
                {
                    "pid": proc.pid,
                    "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                    "cpu_s": round(cpu.user + cpu.system, 2),
                }
            )
        except psutil.NoSuchProcess:
            pass
    return out


def self_memory() -> dict:
    """This process's RSS now and its peak (ru_maxrss), in MiB."""
    import resource

    import psutil

    return {
        "rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system

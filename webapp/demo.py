"""The demo world `make run` starts with: three users, a dozen funded paper clients granted to the
trader and the viewer, and the sample instrument master."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from webapp import audit
from webapp.access import sees_every_client
from webapp.brokers.paper import ensure_account
from webapp.extensions import db
from webapp.instruments.master import load_master
from webapp.models import Client, User
from webapp.security import hash_password
from webapp.timeutil import utcnow

DEMO_CLIENTS = (
    ("Aarav Mehta", 2500000),
    ("Diya Sharma", 1000000),
    ("Kabir Iyer", 750000),
    ("Ananya Reddy", 1500000),
    ("Vihaan Gupta", 500000),
    ("Ishita Nair", 2000000),
    ("Arjun Menon", 1200000),
    ("Saanvi Joshi", 800000),
    ("Reyansh Kapoor", 3000000),
    ("Meera Pillai", 600000),
    ("Rohan Desai", 1800000),
    ("Tara Bhatt", 900000),
)
SAMPLE_MASTER = Path(__file__).resolve().parent / "instruments" / "nse_sample.csv"
DEMO_USERS = (("admin", "admin"), ("trader", "trader"), ("viewer", "viewer"))


def seed_demo(password: str) -> bool:
    """Seed an empty database; returns False (and does nothing) when users already exist."""
    if db.session.execute(sa.select(User.id).limit(1)).first():
        return False
    hashed = hash_password(password)
    clients = [
        Client(name=name, broker="paper", client_code=f"PAPER{n:02d}", enabled=True, allowed_products="CNC,MIS,MTF")
        for n, (name, _) in enumerate(DEMO_CLIENTS, start=1)
    ]
    db.session.add_all(clients)
    for username, role in DEMO_USERS:
        db.session.add(
            User(
                username=username,
                role=role,
                active=True,
                password_hash=hashed,
                password_changed_at=utcnow(),
                clients=[] if sees_every_client(role) else list(clients),
            )
        )
    with SAMPLE_MASTER.open(newline="", encoding="utf-8") as stream:
        report = load_master(stream)
    db.session.flush()
    audit.record(
        "demo.seeded",
        clients=[c.id for c in clients],
        detail={"users": [u for u, _ in DEMO_USERS], "instruments": report.loaded},
    )
    db.session.commit()
    for client, (_, cash) in zip(clients, DEMO_CLIENTS):  # the paper exchange's own books
        ensure_account(client.client_code, Decimal(cash))
    return True

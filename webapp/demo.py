"""The demo world `make run` starts with: three users and the sample instrument master."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from webapp import audit
from webapp.extensions import db
from webapp.instruments.master import load_master
from webapp.models import User
from webapp.security import hash_password
from webapp.timeutil import utcnow

SAMPLE_MASTER = Path(__file__).resolve().parent / "instruments" / "nse_sample.csv"
DEMO_USERS = (("admin", "admin"), ("trader", "trader"), ("viewer", "viewer"))


def seed_demo(password: str) -> bool:
    """Seed an empty database; returns False (and does nothing) when users already exist."""
    if db.session.execute(sa.select(User.id).limit(1)).first():
        return False
    hashed = hash_password(password)
    for username, role in DEMO_USERS:
        db.session.add(User(username=username, role=role, active=True, password_hash=hashed,
                            password_changed_at=utcnow()))
    with SAMPLE_MASTER.open(newline="", encoding="utf-8") as stream:
        report = load_master(stream)
    db.session.flush()
    audit.record("demo.seeded", detail={"users": [u for u, _ in DEMO_USERS], "instruments": report.loaded})
    db.session.commit()
    return True

from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers.paper import ensure_account
from webapp.extensions import db
from webapp.models import Client, Instrument, User


def test_demo_seed_builds_the_demo_world_once(app, runner):
    result = runner.invoke(args=["demo", "seed"])
    assert result.output.strip() == "demo world created"
    with app.app_context():
        clients = db.session.execute(sa.select(Client).order_by(Client.client_code)).scalars().all()
        assert len(clients) == 12 and {c.broker for c in clients} == {"paper"}
        trader = db.session.execute(sa.select(User).where(User.username == "trader")).scalar_one()
        assert trader.role == "trader" and len(trader.clients) == 12
        assert db.session.execute(sa.select(sa.func.count()).select_from(Instrument)).scalar_one() >= 60
        funds = ensure_account(clients[0].client_code)  # existing account: its funds, unchanged
        assert funds.available_cash == Decimal("2500000")
    assert runner.invoke(args=["demo", "seed"]).output.strip() == "database not empty: demo seed skipped"


def test_demo_users_log_in_with_the_demo_password(app, runner, client, auth):
    runner.invoke(args=["demo", "seed"])
    assert auth.login("viewer", app.config["DEMO_PASSWORD"]).status_code == 302
    assert "Aarav Mehta" in client.get("/").data.decode()

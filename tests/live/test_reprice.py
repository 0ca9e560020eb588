"""Mark to market from the feed's prices; only changes are written and published; day P&L rows,
the P&L chart's samples and the CSV exports follow."""

import csv
import io
from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.store import write_quotes
from webapp.models import DailyPnl, Position
from webapp.trading import engine, sync
from webapp.trading.pnl import client_totals, mark_to_market, pnl_samples, record_day


def bought(app, desk, factory, name="P", qty=10):
    client = desk.paper_client(name)
    batch = factory.batch(factory.user(f"buyer-{name}", role="admin"), [client], desk.instrument, quantity=qty)
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(client.id, desk.context())
        position = db.session.execute(sa.select(Position).where(Position.client_id == client.id)).scalar_one()
        return client, position.average_price


def price(app, desk, value: str):
    """The market at `value`, with depth a tick either side (market orders walk the depth)."""
    from webapp.brokers.base import DepthLevel

    last, tick = Decimal(value), desk.instrument.tick_size
    quote = Quote("NSE", "INFY", last, bids=(DepthLevel(last - tick, 10_000),), asks=(DepthLevel(last + tick, 10_000),))
    with app.app_context():
        write_quotes(get_redis(), {desk.instrument.instrument_token: quote})


def test_positions_are_marked_and_only_changes_written(app, desk, factory):
    client, average = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        changed = mark_to_market(get_redis())
        assert [(m.client_id, m.last_price) for m in changed] == [(client.id, Decimal("1600.00"))]
        position = db.session.execute(sa.select(Position)).scalar_one()
        assert position.unrealized_pnl == (Decimal("1600.00") - average) * 10
        assert mark_to_market(get_redis()) == []  # nothing moved: nothing written
        assert client_totals([client.id])[client.id].unrealized == position.unrealized_pnl


def test_without_a_tick_the_master_price_is_used(app, desk, factory):
    bought(app, desk, factory)
    with app.app_context():
        get_redis().delete(f"fanout:quote:{desk.instrument.instrument_token}")
        changed = mark_to_market(get_redis())
        assert [m.last_price for m in changed] == [desk.instrument.last_price]
        assert db.session.execute(sa.select(Position.price_stale)).scalar_one() is True  # not a tick: stale
        assert mark_to_market(get_redis()) == []  # still the master's close, observed no later: nothing written


def test_day_rows_chart_samples_and_exports(app, client, auth, desk, factory):
    paper, _ = bought(app, desk, factory)
    price(app, desk, "1500.00")
    with app.app_context():
        mark_to_market(get_redis())
        record_day([paper.id], get_redis())
        row = db.session.execute(sa.select(DailyPnl)).scalar_one()
        assert row.unrealized < 0 and row.client_id == paper.id
        day = row.day.isoformat()
        samples = pnl_samples(get_redis(), paper.id, day)
        assert len(samples) == 1 and Decimal(samples[0]["value"]) == row.realized + row.unrealized
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    series = client.get(f"/clients/{paper.id}/pnl.json").json["series"]  # the samples, then the P&L now
    assert series[:-1] == [s for s in samples if s["time"] < series[-1]["time"]]
    assert Decimal(series[-1]["value"]) == row.realized + row.unrealized
    pnl = client.post(f"/clients/{paper.id}/exports", data={"kind": "pnl", "start": day, "end": day})
    rows = list(csv.DictReader(io.StringIO(pnl.data.decode())))
    assert [r["day"] for r in rows] == [day] and Decimal(rows[0]["total"]) == row.realized + row.unrealized
    positions = client.post(f"/clients/{paper.id}/exports", data={"kind": "positions", "start": day, "end": day})
    assert list(csv.DictReader(io.StringIO(positions.data.decode())))[0]["quantity"] == "10"
    bad = client.post(f"/clients/{paper.id}/exports", data={"kind": "pnl", "start": day, "end": "2020-01-01"})
    assert "The last day is before the first." in bad.data.decode()


def test_desk_page_and_its_live_partial_show_pnl(app, client, auth, desk, factory):
    paper, average = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        mark_to_market(get_redis())
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    expected = (Decimal("1600.00") - average) * 10
    from webapp.money import rupees

    page = client.get("/").data.decode()
    assert f'id="desk-mtm">{rupees(expected)}' in page
    live = client.get("/desk/live", headers={"HX-Request": "true"}).data.decode()
    assert 'id="desk-totals" hx-swap-oob="true"' in live
    assert f'<tr id="client-{paper.id}" hx-swap-oob="true" data-day-pnl=' in live


def test_a_closed_position_keeps_no_unrealized_pnl(app, desk, factory):
    client, _ = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        mark_to_market(get_redis())
    exit_batch = factory.batch(
        factory.user("seller", role="admin"), [client], desk.instrument, quantity=10, side="SELL"
    )
    with app.app_context():
        engine.send_batch(exit_batch.id, desk.context())
        sync.sync_client(client.id, desk.context())
        position = db.session.execute(sa.select(Position)).scalar_one()
        assert (position.quantity, position.unrealized_pnl) == (0, 0) and position.realized_pnl != 0
        assert client_totals([client.id])[client.id].unrealized == 0


def test_position_sync_flags_differences_on_the_desk(app, client, auth, desk, factory):
    paper, _ = bought(app, desk, factory)
    with app.app_context():
        from webapp.trading.sync import position_differences

        assert position_differences(get_redis(), [paper.id]) == {}
        db.session.execute(sa.update(Position).values(quantity=3))  # the ledger drifts from the broker
        db.session.commit()
        sync.sync_client(paper.id, desk.context())
        diffs = position_differences(get_redis(), [paper.id])[paper.id]
        assert diffs == [{"instrument": "NSE:INFY", "product": "MIS", "desk": 3, "broker": 10}]
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    assert "Positions differ from the broker — NSE:INFY MIS: desk 3, broker 10" in client.get("/").data.decode()


def test_marks_match_the_ledger_to_the_paisa(app, factory):
    """The database marks positions (SQLite computes in REAL): every mark, and every client's total,
    must equal ledger.unrealized() in Decimal exactly, on awkward prices, 4-decimal costs left by
    partial exits, shorts and crore-sized notionals."""
    import random

    from webapp.trading.ledger import Book, apply_fill, unrealized

    rng = random.Random(5)
    awkward = [
        Decimal("1234.05"),
        Decimal("0.05"),
        Decimal("19999.95"),
        Decimal("333.35"),
        Decimal("100.01"),
        Decimal("4321.15"),
        Decimal("999.99"),
        Decimal("1548.15"),
    ]
    instruments = [factory.instrument(f"AWK{n}", 7000 + n, price=str(p)) for n, p in enumerate(awkward)]
    clients = [factory.client(f"Awkward {n}") for n in range(6)]
    books = {}
    with app.app_context():
        for client in clients:
            for instrument in instruments:
                for product in ("MIS", "CNC"):
                    book = Book()
                    for _ in range(rng.randint(1, 6)):
                        book = apply_fill(
                            book,
                            rng.choice(["BUY", "SELL"]),
                            rng.choice([1, 3, 7, 13, 100_000]),
                            Decimal(rng.randint(5, 2_000_000)) / 100,
                        )
                    if book.quantity == 0:
                        book = apply_fill(book, "SELL", 3, Decimal("1234.05"))
                    db.session.add(
                        Position(
                            client_id=client.id,
                            instrument_id=instrument.id,
                            product=product,
                            quantity=book.quantity,
                            cost=book.cost,
                            realized_pnl=book.realized_pnl,
                            average_price=book.average_price,
                        )
                    )
                    books[(client.id, instrument.id, product)] = book
        db.session.add(
            Position(
                client_id=clients[0].id,
                instrument_id=instruments[0].id,
                product="NRML",
                quantity=3,
                cost=Decimal("3702.15"),
            )
        )  # 1234.05 × 3: exactly flat
        books[(clients[0].id, instruments[0].id, "NRML")] = Book(3, Decimal("3702.15"))
        db.session.commit()
        assert any(b.cost != b.cost.quantize(Decimal("0.01")) for b in books.values())  # 4-decimal costs
        assert any(b.quantity < 0 for b in books.values()) and any(abs(b.quantity) >= 100_000 for b in books.values())

        prior: dict = {}  # the last round's prices (round 0 marks every position)
        for round_ in range(3):  # the master's prices (no tick yet), then two moves, each to awkward prices
            marks = {
                i.id: (awkward[(n + round_) % len(awkward)] if round_ else i.last_price)
                for n, i in enumerate(instruments)
            }
            if round_:
                write_quotes(
                    get_redis(), {i.instrument_token: Quote("NSE", i.tradingsymbol, marks[i.id]) for i in instruments}
                )
            changed = mark_to_market(get_redis())
            expected = {key: unrealized(book, marks[key[1]]) for key, book in books.items()}
            stored = {
                (p.client_id, p.instrument_id, p.product): p for p in db.session.execute(sa.select(Position)).scalars()
            }
            assert {key: p.unrealized_pnl for key, p in stored.items()} == expected
            assert {key: p.last_price for key, p in stored.items()} == {key: marks[key[1]] for key in books}
            assert sorted((m.position_id, m.unrealized_pnl) for m in changed) == sorted(
                (p.id, expected[key]) for key, p in stored.items() if round_ == 0 or marks[key[1]] != prior[key[1]]
            )
            totals = client_totals([c.id for c in clients])
            for client in clients:
                assert totals[client.id].unrealized == sum(
                    (v for key, v in expected.items() if key[0] == client.id), Decimal(0)
                )
            assert mark_to_market(get_redis()) == []  # nothing moved
            prior = marks


def test_a_position_whose_book_changed_is_remarked_at_the_same_price(app, desk, factory):
    client, _ = bought(app, desk, factory)
    price(app, desk, "1600.00")
    with app.app_context():
        mark_to_market(get_redis())
        db.session.execute(sa.update(Position).values(quantity=-4, cost=Decimal("6401.0100")))  # no new mark
        db.session.commit()
        changed = mark_to_market(get_redis())
        assert [(m.client_id, m.last_price, m.unrealized_pnl) for m in changed] == [
            (client.id, Decimal("1600.00"), Decimal("1.0100"))
        ]
        assert db.session.execute(sa.select(Position.unrealized_pnl)).scalar_one() == Decimal("1.0100")


def test_a_mark_the_ledger_already_wrote_is_not_rewritten(app, factory):
    """1234.05 × 3 − 3702.15 is 0 in Decimal but −4.5e-13 in REAL arithmetic: the pass must see the
    flat position the sync wrote (Decimal 0 at 1234.05) as unchanged, and keep the stored total exact."""

    instrument = factory.instrument("AWK", 7100, price="1234.05")
    client = factory.client("Flat")
    with app.app_context():
        db.session.add_all(
            [
                Position(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    product=product,
                    quantity=q,
                    cost=cost,
                    last_price=Decimal("1234.05"),
                    unrealized_pnl=Decimal(0),
                )
                for product, q, cost in (("MIS", 3, "3702.15"), ("CNC", -7, "8638.35"))
            ]
        )
        db.session.commit()
        write_quotes(get_redis(), {instrument.instrument_token: Quote("NSE", "AWK", Decimal("1234.05"))})
        assert mark_to_market(get_redis()) == []
        write_quotes(get_redis(), {instrument.instrument_token: Quote("NSE", "AWK", Decimal("1234.10"))})
        assert sorted(m.unrealized_pnl for m in mark_to_market(get_redis())) == [Decimal("-0.35"), Decimal("0.15")]
        write_quotes(get_redis(), {instrument.instrument_token: Quote("NSE", "AWK", Decimal("1234.05"))})
        assert len(mark_to_market(get_redis())) == 2
        assert mark_to_market(get_redis()) == []
        assert db.session.execute(sa.select(sa.func.count()).where(Position.unrealized_pnl == 0)).scalar_one() == 2
        assert client_totals([client.id])[client.id].unrealized == 0


def test_client_totals_are_exact_to_the_hundredth_of_a_paisa(app, factory):
    """The day P&L rows (exports) are built from these: 300 positions of one client, one huge and
    299 of ₹0.0001, must add up exactly even where the database keeps Numeric as REAL."""
    from webapp.models import Client

    with app.app_context():
        client = Client(name="Exact", broker="paper", client_code="EXACT1")
        db.session.add(client)
        db.session.flush()
        instruments = [factory._instrument(f"EX{i}", 900_000 + i) for i in range(300)]
        values = [Decimal("99999999999.0001")] + [Decimal("0.0001")] * 299
        for instrument, value in zip(instruments, values):
            db.session.add(
                Position(
                    client_id=client.id,
                    instrument_id=instrument.id,
                    product="MIS",
                    quantity=0,
                    cost=Decimal(0),
                    average_price=Decimal(0),
                    realized_pnl=value,
                    unrealized_pnl=-value,
                )
            )
        db.session.commit()
        totals = client_totals([client.id])[client.id]
        assert totals.realized == Decimal("99999999999.0300") and totals.unrealized == Decimal("-99999999999.0300")

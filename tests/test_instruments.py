from pathlib import Path

import sqlalchemy as sa

from webapp.extensions import db
from webapp.instruments.master import load_master_text
from webapp.models import Instrument

HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
    "instrument_type,segment,exchange\n"
)
SAMPLE = Path(__file__).resolve().parent.parent / "webapp" / "instruments" / "nse_sample.csv"


def test_cli_loads_the_sample_master_idempotently(app, runner):
    first = runner.invoke(args=["instruments", "load", str(SAMPLE)])
    assert first.exit_code == 0 and "0 rejected" in first.output
    second = runner.invoke(args=["instruments", "load", str(SAMPLE)])
    assert "0 new, 0 updated" in second.output
    with app.app_context():
        infy = db.session.execute(sa.select(Instrument).where(Instrument.tradingsymbol == "INFY")).scalar_one()
        assert infy.instrument_token == 408065 and str(infy.tick_size) == "0.1000"


def test_sample_ticks_follow_the_nse_price_bands(app, runner):
    from decimal import Decimal

    runner.invoke(args=["instruments", "load", str(SAMPLE)])
    bands = [
        (Decimal(250), "0.01"),
        (Decimal(1000), "0.05"),
        (Decimal(5000), "0.10"),
        (Decimal(10000), "0.50"),
        (Decimal(20000), "1.00"),
        (None, "5.00"),
    ]
    with app.app_context():
        for i in db.session.execute(sa.select(Instrument).where(Instrument.segment != "INDICES")).scalars():
            expected = next(
                tick
                for limit, tick in bands
                if limit is None or i.last_price < limit or (limit != 250 and i.last_price == limit)
            )
            assert i.tick_size == Decimal(expected), i.tradingsymbol
            assert (i.last_price / i.tick_size) % 1 == 0


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_load(app):
    text = HEADER + (
        "408065,1594,INFY,INFOSYS,1548.20,,0,0.10,1,EQ,NSE,NSE\n"
        "x,1,BAD,BAD,1,,0,0.05,1,EQ,NSE,NSE\n"
        "738561,2885,RELIANCE,RELIANCE,1510.40,,0,0,1,EQ,NSE,NSE\n"
        "2953217,11536,TCS,TCS,3102.50,,0,0.10,1,EQ,NSE,NSE\n"
        "408065,1594,INFY,INFOSYS,1548.20,,0,0.10,1,EQ,NSE,NSE\n"
    )
    with app.app_context():
        report = load_master_text(text)
        db.session.commit()
        assert report.created == 2
        assert report.errors == [
            "line 3: instrument_token, exchange_token and lot_size must be whole numbers",
            "line 4: tick_size must be above zero ('0')",
            "line 6: NSE:INFY appears twice; the first row was kept",
        ]


def test_a_file_that_is_not_a_master_is_refused(app, runner, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    result = runner.invoke(args=["instruments", "load", str(path)])
    assert result.exit_code != 0 and "missing columns instrument_token" in result.output


def test_active_search_returns_a_partial(app, client, auth, factory):
    factory.user("tara")
    factory.instrument("INFY", 1594)
    factory.instrument("INFRATEL", 9999, price="300.05", tick="0.05")
    auth.login("tara")
    response = client.get("/instruments/?q=inf", headers={"HX-Request": "true"})
    body = response.data.decode()
    assert "<html" not in body and "INFY" in body and "INFRATEL" in body
    assert "HX-Request" in response.headers["Vary"]
    assert "No instrument matches" in client.get("/instruments/?q=zzz", headers={"HX-Request": "true"}).data.decode()
    full = client.get("/instruments/?q=infy").data.decode()
    assert "<html" in full and "INFY" in full


def test_instrument_page_shows_circuit_band(app, client, auth, factory):
    factory.user("tara")
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    auth.login("tara")
    page = client.get(f"/instruments/{instrument.id}").data.decode()
    assert "1,393.40 – 1,703.00 (10%)" in page

"""Each adapter declares what it is; the rest of the desk asks the registry and never names a broker.

A toy adapter, defined and registered here only, works end to end through its own class and one
registration: options from config, the client form's broker choices, the session badge, the quote
fallback, the feed's source choices and the one OrderRequest check.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from webapp import brokers
from webapp.brokers import (
    broker_choices,
    broker_names,
    broker_options,
    create_broker,
    feed_sources,
    quote_brokers,
    register,
    sessionless_brokers,
    streaming_brokers,
)
from webapp.brokers.base import (
    Account,
    Broker,
    Capabilities,
    ConfigOption,
    Funds,
    InstrumentRef,
    InvalidInput,
    OrderRequest,
    OrderType,
    Product,
    Quote,
    RateLimits,
    Side,
)
from webapp.config import Config, ConfigError
from webapp.extensions import db, get_redis
from webapp.trading.accounts import adapter_for
from webapp.trading.quote_fallback import BrokerQuotes
from webapp.vault import current_vault

ROOT = Path(__file__).resolve().parents[2]


class ToyBroker(Broker):
    """A broker the desk has never heard of: everything about it is declared here."""

    name = "toy"
    label = "Toy Securities"
    rate_limits = RateLimits(orders_per_second=5)
    tag_max_length = 12
    login_kind = "none"
    settings = {"TOY_URL": "https://api.toy.invalid"}  # its endpoint: read from the environment by Config
    config_options = (
        ConfigOption("greeting", "TOY_GREETING", "hello"),
        ConfigOption("base_url", "TOY_URL", required=True),
    )
    capabilities = Capabilities(quotes=True)
    quote_preference = 1  # asked before every other broker

    placed: list[OrderRequest] = []

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        self.placed.append(request)
        return f"TOY{len(self.placed)}"

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        # the price shows the option from config reached the adapter
        price = Decimal("1601.50") if self.options["greeting"] == "namaste" else Decimal("1.00")
        return {ref.key: Quote(ref.exchange, ref.tradingsymbol, price) for ref in instruments}

    def funds(self) -> Funds:
        return Funds(available_cash=Decimal("100"))

    def modify(self, order_id: str, **changes: Any) -> str:
        return order_id

    def cancel(self, order_id: str) -> str:
        return order_id

    order_book = trades = positions = holdings = instruments = lambda self: []

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        return Decimal("0")


@pytest.fixture
def toy(app, monkeypatch):
    broker_names()  # every real adapter imported first, as at start-up
    monkeypatch.setitem(brokers._registry, "toy", ToyBroker)  # removed again after the test
    assert register(ToyBroker) is ToyBroker
    app.config.update(TOY_GREETING="namaste", TOY_URL="http://toy.invalid")
    return ToyBroker


def request_(**fields) -> OrderRequest:
    base = dict(
        exchange="NSE",
        tradingsymbol="INFY",
        exchange_token=1594,
        side=Side.BUY,
        quantity=1,
        product=Product.CNC,
        order_type=OrderType.MARKET,
        tag="ABC123",
    )
    return OrderRequest(**{**base, **fields})


def test_a_toy_adapter_works_with_its_own_class_and_one_registration(app, toy, factory, client, auth):
    assert "toy" in broker_names() and ("toy", "Toy Securities") in broker_choices()
    assert broker_options("toy", app.config) == {"greeting": "namaste", "base_url": "http://toy.invalid"}
    assert quote_brokers()[0] == "toy" and "toy" in sessionless_brokers() and "toy" not in streaming_brokers()

    toy_client = factory.client("Toy client", broker="toy", code="TOY01")
    instrument = factory.instrument()
    with app.app_context():
        adapter = adapter_for(toy_client, app.config, current_vault())
        assert isinstance(adapter, ToyBroker) and adapter.options["greeting"] == "namaste"
        assert toy_client.session_state() == "connected"  # no login: always connected, like paper
        fallback = BrokerQuotes(app.config, current_vault(), get_redis())
        assert [c.broker for c in fallback.clients()][0] == "toy"
        row = db.session.get(type(instrument), instrument.id)
        assert fallback([row])[row.id].last_price == Decimal("1601.50")

    factory.user("root", role="admin")
    auth.login("root")
    form = client.get("/admin/clients/new").data.decode()
    assert re.search(r'<option[^>]*value="toy"[^>]*>Toy Securities</option>', form)


def test_a_brokers_own_settings_come_from_the_environment_with_its_defaults(toy):
    """The toy's endpoint is a setting of the desk without a line in webapp/config.py."""
    assert Config.from_env({}).as_mapping()["TOY_URL"] == "https://api.toy.invalid"
    settings = Config.from_env({"TOY_URL": "http://127.0.0.1:9/", "KITE_API_URL": "http://127.0.0.1:8/"}).as_mapping()
    assert settings["TOY_URL"] == "http://127.0.0.1:9/" and settings["KITE_API_URL"] == "http://127.0.0.1:8/"
    assert broker_options("toy", settings)["base_url"] == "http://127.0.0.1:9/"
    assert Config.from_env({}).as_mapping()["MOTILAL_API_URL"] == "https://openapi.motilaloswal.com"


def test_the_feed_source_choices_come_from_the_registry(toy):
    streaming = [name for name in broker_names() if brokers.broker_class(name).capabilities.streaming]
    assert {"kite", "sharekhan"} <= set(streaming) and "toy" not in streaming  # toy does not stream
    assert feed_sources() == ("paper", *streaming)
    assert Config.from_env({"FEED_SOURCE": "sharekhan"}).FEED_SOURCE == "sharekhan"
    with pytest.raises(ConfigError, match=f"FEED_SOURCE must be one of {', '.join(feed_sources())}, got 'toy'"):
        Config.from_env({"FEED_SOURCE": "toy"})


MALFORMED = [
    (dict(quantity=0), "Quantity must be a positive whole number"),
    (dict(order_type=OrderType.LIMIT), "A LIMIT order needs a price"),
    (dict(order_type=OrderType.LIMIT, price=Decimal("-1")), "A LIMIT order needs a price"),
    (dict(order_type=OrderType.SL, trigger_price=Decimal("1500")), "A SL order needs a price"),
    (dict(order_type=OrderType.SLM), "A SL-M order needs a trigger price"),
]


@pytest.mark.parametrize("name", ["paper", "kite", "motilal", "sharekhan", "angel", "kotak", "upstox", "dhan", "toy"])
@pytest.mark.parametrize("fields, message", MALFORMED)
def test_every_adapter_refuses_a_malformed_request_as_invalid_input_before_sending(app, toy, name, fields, message):
    """One check, run first by every adapter's place(): InvalidInput, not Rejected, because the
    request never reached the broker's RMS (tests/paper/test_rejections.py keeps the paper
    exchange's own refusals Rejected). Nothing is listening at the brokers' URLs: a request that
    got past the check would be Unavailable instead."""
    if name != "toy" and name not in broker_names():
        pytest.skip(f"{name} is not registered here (an optional dependency is missing)")
    # every broker's endpoints point at a port nothing listens on
    config = {**app.config, **{key: "http://127.0.0.1:9" for key in brokers.broker_settings() if key.endswith("_URL")}}
    account = Account(client_code="AB1234", credentials={"api_key": "k", "api_secret": "s", "secret_key": "x" * 32})
    with app.app_context():
        adapter = create_broker(name, account, broker_options(name, config))
        try:
            with pytest.raises(InvalidInput) as caught:
                adapter.place(request_(**fields))
        finally:
            adapter.close()
    assert caught.value.message == message


def test_a_tag_is_checked_against_the_adapters_declared_length(toy):
    broker = ToyBroker(Account(client_code="T1"))
    with pytest.raises(InvalidInput, match="^Toy Securities order tags are 1 to 12 letters and digits$"):
        broker.place(request_(tag="X" * 13))
    with pytest.raises(InvalidInput, match="letters and digits"):
        broker.place(request_(tag="bad-tag"))
    assert broker.place(request_(tag="X" * 12)).startswith("TOY")


# ----------------------------------------------------------------------------- nobody else names a broker

# string literals that are a broker's name but not a question about which broker this is
ALLOWED = {
    ("webapp/demo.py", "paper"),  # the demo seed opens paper clients
    ("webapp/automation/deployments.py", "paper"),  # a deployment's paper mode (its stored word), not a broker
    # the backtester's charge plans are named after the tariffs they copy (stored in saved runs), not adapters
    ("webapp/backtest/charges.py", "upstox"),
    ("webapp/backtest/charges.py", "dhan"),
}


def broker_name_literals(path: Path, names: set[str]) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value in names
    ]


def test_no_code_outside_the_brokers_package_names_a_broker():
    names = {"kite", "motilal", "sharekhan", "paper"} | set(broker_names())
    found = []
    for folder in ("webapp", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("webapp/brokers/"):
                continue
            found += [
                f"{relative}:{line} {value!r}"
                for line, value in broker_name_literals(path, names)
                if (relative, value) not in ALLOWED
            ]
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            found += [
                f"{path.relative_to(ROOT).as_posix()}:{line_no} {m!r}"
                for m in re.findall(r"""['"](kite|motilal|sharekhan|paper)['"]""", line)
            ]
    assert found == [], "ask webapp.brokers what the broker can do instead of naming it:\n" + "\n".join(found)

"""Every emulated broker in one table, so a test or a bench puts a desk client with a live session
at any of them the same way: start the broker's emulator (in-process `EmulatorServer`, or
`python -m <module> --port 0` in its own process), point the desk's settings at its URL, open an
account over its `/_emulator/accounts` endpoint and turn that account into a client code,
credentials and a session (`DeskAccount`).

Kite, Motilal and ShareKhan are written out here from their emulators' add_account dicts. The
brokers added by issue 16 bring their own `desk_account(creds)` in tests/brokers/<name>_fixtures.py;
one whose emulator, fixtures or registered adapter is absent is left out of `available()` (not an
error), so the tests and the bench pick it up as soon as it lands.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import requests

from tests.emulators.common import BrokerEmulator, FaultPlan
from webapp.brokers.base import Account, BrokerSession
from webapp.timeutil import utcnow

SESSION_HOURS = 8  # a session stored with no expiry of its own (the desk needs one to call it live)
NEW_BROKERS = ("angel", "kotak", "upstox", "dhan")
ORDER = ("kite", "motilal", "sharekhan", *NEW_BROKERS)  # every emulated (real) broker


@dataclass(frozen=True)
class DeskAccount:
    """What the desk stores on a Client for one account at an emulated broker."""

    client_code: str
    credentials: dict[str, str]
    session: BrokerSession


# ---------------------------------------------------------------- the existing brokers


def _kite_account(creds: Mapping[str, Any], url: str) -> DeskAccount:
    return DeskAccount(
        creds["user_id"],
        {"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
        BrokerSession(creds["access_token"], utcnow() + timedelta(hours=SESSION_HOURS)),
    )


def _motilal_account(creds: Mapping[str, Any], url: str) -> DeskAccount:
    """Motilal's add_account opens no session: log in as the desk's login job does (password, DOB, TOTP)."""
    from webapp.brokers.motilal import MotilalBroker

    credentials = {"api_key": creds["api_key"], "user_id": creds["user_id"]}
    if creds.get("vendor_code"):
        credentials["vendor_code"] = creds["vendor_code"]
    broker = MotilalBroker(Account(creds["client_code"], credentials), {"base_url": url, "timeout": 10})
    try:
        session = broker.complete_login(
            {"password": creds["password"], "two_fa": creds["two_fa"], "totp": pyotp.TOTP(creds["totp_secret"]).now()}
        )
    finally:
        broker.close()
    return DeskAccount(creds["client_code"], credentials, session)


def _sharekhan_account(creds: Mapping[str, Any], url: str) -> DeskAccount:
    credentials = {"api_key": creds["api_key"], "secret_key": creds["secret_key"]}
    if creds.get("vendor_key"):
        credentials["vendor_key"] = creds["vendor_key"]
    session = BrokerSession(
        creds["access_token"], utcnow() + timedelta(hours=SESSION_HOURS), extra={"login_id": creds["login_id"]}
    )
    return DeskAccount(str(creds["customer_id"]), credentials, session)


EXISTING: dict[str, tuple[str, str, Callable[[Mapping[str, Any], str], DeskAccount]]] = {
    "kite": ("tests.emulators.kite", "KiteEmulator", _kite_account),
    "motilal": ("tests.emulators.motilal", "MotilalEmulator", _motilal_account),
    "sharekhan": ("tests.emulators.sharekhan", "ShareKhanEmulator", _sharekhan_account),
}


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class EmulatedBroker:
    name: str
    module: str  # `python -m <module> --port 0 --latency-ms R` serves it
    emulator_class: type[BrokerEmulator]
    _desk_account: Callable[[Mapping[str, Any], str], DeskAccount]
    url_setting: str | None = None  # the fixtures' API_URL_SETTING, pointed at the emulator whatever its name

    def emulator(self, faults: FaultPlan | None = None) -> BrokerEmulator:
        return self.emulator_class(faults=faults)

    def settings(self, url: str) -> dict[str, str]:
        """Every HTTP endpoint setting the adapter reads (its *_URL keys), pointed at the emulator.
        Stream endpoints (ws://, wss://) are left alone: nothing here opens a stream."""
        from webapp.brokers import broker_class

        keys = {
            key
            for key, default in broker_class(self.name).settings.items()
            if key.endswith("_URL") and not str(default).startswith(("ws://", "wss://"))
        }
        if self.url_setting:
            keys.add(self.url_setting)
        return dict.fromkeys(sorted(keys), url)

    def open_account(self, url: str, http: requests.Session | None = None, **fields: Any) -> DeskAccount:
        """A new account at the emulator (over its admin endpoint, so it works for an emulator in
        another process too) with a live session, as the desk stores it."""
        body = {key: str(value) for key, value in fields.items()}
        if http is None:
            with requests.Session() as own:
                answer = own.post(f"{url}/_emulator/accounts", json=body, timeout=30)
        else:
            answer = http.post(f"{url}/_emulator/accounts", json=body, timeout=30)
        answer.raise_for_status()
        return self._desk_account(answer.json(), url)


def _fixtures_account(name: str) -> Callable[[Mapping[str, Any], str], DeskAccount]:
    fixtures = importlib.import_module(f"tests.brokers.{name}_fixtures")

    def account(creds: Mapping[str, Any], url: str) -> DeskAccount:
        client_code, credentials, session = fixtures.desk_account(dict(creds))
        if session.expires_at is None:
            session = BrokerSession(session.access_token, utcnow() + timedelta(hours=SESSION_HOURS), session.extra)
        return DeskAccount(str(client_code), dict(credentials), session)

    return account


def _emulator_class(module: Any) -> type[BrokerEmulator]:
    """The BrokerEmulator subclass a broker's emulator module defines."""
    found = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BrokerEmulator) and cls is not BrokerEmulator and cls.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise LookupError(f"{module.__name__} defines {len(found)} emulators, expected one")
    return found[0]


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing(name: str) -> str | None:
    """Why `name` cannot be put on a desk yet (a module absent, the adapter not registered), or None."""
    from webapp.brokers import broker_names

    modules = [f"webapp.brokers.{name}", f"tests.emulators.{name}"]
    if name not in EXISTING:
        modules.append(f"tests.brokers.{name}_fixtures")
    absent = [m for m in modules if not _present(m)]
    if absent:
        return "absent: " + ", ".join(absent)
    if name not in broker_names():
        return f"the adapter {name!r} is not registered"
    return None


def emulated(name: str) -> EmulatedBroker:
    """The table row for one broker (raises when it is missing: see `missing`)."""
    why = missing(name)
    if why:
        raise LookupError(f"{name}: {why}")
    if name in EXISTING:
        module, class_name, account = EXISTING[name]
        return EmulatedBroker(name, module, getattr(importlib.import_module(module), class_name), account)
    module = f"tests.emulators.{name}"
    fixtures = importlib.import_module(f"tests.brokers.{name}_fixtures")
    return EmulatedBroker(
        name,
        module,
        _emulator_class(importlib.import_module(module)),
        _fixtures_account(name),
        getattr(fixtures, "API_URL_SETTING", None),
    )


def available(names: tuple[str, ...] = ORDER) -> list[str]:
    """The brokers of `names` whose emulator, fixtures and adapter are all here."""
    return [name for name in names if missing(name) is None]


# ---------------------------------------------------------------- desk clients (inside the test app)


def store_client(app, factory, name: str, broker: str, account: DeskAccount):
    """A desk Client at `broker` holding the account's credentials (sealed) and live session."""
    from webapp.extensions import db
    from webapp.models import Client
    from webapp.trading.sessions import store_session
    from webapp.vault import current_vault

    client = factory.client(name, broker=broker, code=account.client_code, credentials=account.credentials)
    with app.app_context():
        stored = db.session.get(Client, client.id)
        store_session(stored, account.session, current_vault())
        db.session.commit()
    return client

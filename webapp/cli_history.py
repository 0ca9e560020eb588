"""`flask history import-csv|fetch|simulate|coverage`: the candles backtests run over
(webapp/marketdata/history.py; docs/history.md)."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from webapp.extensions import db

history_cli = AppGroup("history", help="Stored candles for backtests.")
INTERVAL = click.option(
    "--interval", default=1, show_default=True, type=int, help="Bar length in minutes: 1, 3, 5, 15 or 60."
)


def _instrument(symbol: str, exchange: str):
    from webapp.models import Instrument

    instrument = db.session.execute(
        sa.select(Instrument).where(
            sa.func.upper(Instrument.tradingsymbol) == symbol.upper(), Instrument.exchange == exchange.upper()
        )
    ).scalar_one_or_none()
    if instrument is None:
        raise click.ClickException(f"{exchange.upper()}:{symbol.upper()} is not in the instrument master")
    return instrument


def _check_interval(interval: int) -> None:
    from webapp.marketdata.intervals import INTERVALS

    if interval not in INTERVALS:
        raise click.ClickException(f"--interval must be one of {', '.join(map(str, INTERVALS))}")


def _report(report) -> None:
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    if report.bad_lines > len(report.errors):
        click.echo(f"... and {report.bad_lines - len(report.errors)} more rejected lines", err=True)
    for line, message in report.gaps:
        click.echo(f"gap before line {line}: {message}", err=True)
    click.echo(report.summary)


@history_cli.command("import-csv")
@click.argument("symbol")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@INTERVAL
@click.option("--exchange", default="NSE", show_default=True)
def import_csv(symbol: str, path: Path, interval: int, exchange: str) -> None:
    """Load OHLCV candles of SYMBOL from a CSV file (timestamp,open,high,low,close,volume; times without
    an offset are IST). Bad lines are reported by number and left out; loading again changes nothing."""
    from webapp.marketdata import history

    _check_interval(interval)
    instrument = _instrument(symbol, exchange)
    report = history.import_csv(db.session, instrument.id, interval, path.read_text(encoding="utf-8-sig"))
    db.session.commit()
    _report(report)
    if report.bad_lines and not (report.loaded or report.skipped):
        raise SystemExit(1)


@history_cli.command("fetch")
@click.argument("symbol")
@click.option("--client", "client_code", required=True, help="A connected client whose broker serves history.")
@click.option("--from", "first", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First IST day.")
@click.option("--to", "last", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last IST day (included).")
@INTERVAL
@click.option("--exchange", default="NSE", show_default=True)
def fetch(symbol: str, client_code: str, first, last, interval: int, exchange: str) -> None:
    """Fetch SYMBOL's candles from the historical API of CLIENT's broker (paced as the broker asks)."""
    from webapp.brokers import broker_class, history_brokers
    from webapp.brokers.base import BrokerError
    from webapp.marketdata import history
    from webapp.models import Client
    from webapp.trading.accounts import adapter_for
    from webapp.vault import current_vault

    _check_interval(interval)
    if last.date() < first.date():
        raise click.ClickException("--to is before --from")
    instrument = _instrument(symbol, exchange)
    client = db.session.execute(sa.select(Client).where(Client.client_code == client_code)).scalar_one_or_none()
    if client is None:
        raise click.ClickException(f"no client with code {client_code}")
    if client.broker not in history_brokers():
        raise click.ClickException(f"{broker_class(client.broker).label} has no historical candles")
    adapter = adapter_for(client, current_app.config, current_vault())
    try:
        report = history.fetch(db.session, instrument, interval, first.date(), last.date(), adapter)
    except BrokerError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    finally:
        adapter.close()
    db.session.commit()
    _report(report)


@history_cli.command("simulate")
@click.option("--symbol", "symbols", multiple=True, help="Instruments to simulate (default: the demo's).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same candles.")
@click.option(
    "--last-day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="The year's last day (default: last weekday)."
)
@click.option("--days", default=365, show_default=True, help="Calendar days of history.")
def simulate(symbols: tuple[str, ...], seed: int, last_day, days: int) -> None:
    """The paper simulator's deterministic year of 1-minute candles (idempotent)."""
    from webapp.marketdata import history
    from webapp.models import Instrument
    from webapp.timeutil import IST, utcnow

    wanted = [s.upper() for s in symbols] or list(history.DEMO_SYMBOLS)
    instruments = (
        db.session.execute(sa.select(Instrument).where(sa.func.upper(Instrument.tradingsymbol).in_(wanted)))
        .scalars()
        .all()
    )
    missing = sorted(set(wanted) - {i.tradingsymbol.upper() for i in instruments})
    if missing:
        raise click.ClickException(f"not in the instrument master: {', '.join(missing)}")
    end = last_day.date() if last_day else history.last_full_session(utcnow().astimezone(IST).date())
    for instrument in sorted(instruments, key=lambda i: i.tradingsymbol):
        try:
            loaded = history.simulate(db.session, [instrument], seed, end, days)[instrument.tradingsymbol]
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(f"{instrument.tradingsymbol}: {loaded} candles stored (seed {seed}, year to {end:%d %b %Y})")


@history_cli.command("coverage")
@click.argument("symbol")
@click.option("--exchange", default="NSE", show_default=True)
def coverage(symbol: str, exchange: str) -> None:
    """What history SYMBOL has, per interval."""
    from webapp.marketdata import history
    from webapp.marketdata.intervals import INTERVALS
    from webapp.timeutil import format_ist

    instrument = _instrument(symbol, exchange)
    for interval in INTERVALS:
        covered = history.coverage(db.session, instrument.id, interval)
        if covered is None:
            click.echo(f"{interval:>3}-minute: none")
        else:
            click.echo(f"{interval:>3}-minute: {covered[2]} bars, {format_ist(covered[0])} – {format_ist(covered[1])}")


def queue_demo_history(seed: int = 0) -> None:
    """Queue the demo's simulated year on the backtests queue (a worker makes it in the background)."""
    from redis.exceptions import RedisError
    from rq.exceptions import DuplicateJobError

    from webapp.tasks import QUEUE_BACKTESTS, queue

    try:
        queue(QUEUE_BACKTESTS).enqueue(
            "jobs.history.simulate_demo", seed, job_id="history-simulate-demo", unique=True, job_timeout=1800
        )
    except DuplicateJobError:
        pass
    except RedisError:  # no queue now: `flask history simulate` makes the same year by hand
        current_app.logger.warning("history=demo-not-queued reason=redis-unavailable")

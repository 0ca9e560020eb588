"""Flask commands: `flask demo seed`, `flask users create-admin`, `flask audit verify|rekey`,
`flask instruments load FILE`, `flask secrets rotate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from webapp.extensions import db

demo = AppGroup("demo", help="The demo world for `make run`.")
users = AppGroup("users", help="Manage desk users.")
audit_cli = AppGroup("audit", help="The audit trail.")
instruments = AppGroup("instruments", help="The instrument master.")
secrets_cli = AppGroup("secrets", help="Encrypted secrets at rest.")
feed = AppGroup("feed", help="The market-data process.")


@demo.command("seed")
def demo_seed() -> None:
    """Create the demo users and load the sample instrument master, once (an empty database only)."""
    from webapp.demo import seed_demo

    created = seed_demo(current_app.config["DEMO_PASSWORD"])
    if created:  # the demo instruments' simulated year, made by a worker (webapp/cli_history.py)
        from webapp.cli_history import queue_demo_history

        queue_demo_history()
    click.echo("demo world created" if created else "database not empty: demo seed skipped")


@users.command("create-admin")
@click.argument("username")
@click.option("--email", default=None)
@click.password_option(help="The admin's password (asked twice when not given).")
def create_admin(username: str, email: str | None, password: str) -> None:
    """Create an admin user (the first user of a production desk)."""
    from webapp import audit
    from webapp.models import User
    from webapp.security import hash_password, password_problem
    from webapp.timeutil import utcnow

    if db.session.execute(sa.select(User.id).where(sa.func.lower(User.username) == username.lower())).first():
        raise click.ClickException(f"user {username} already exists")
    if problem := password_problem(password, username):
        raise click.ClickException(f"weak password: {problem}")
    user = User(
        username=username,
        email=email,
        role="admin",
        active=True,
        password_hash=hash_password(password),
        password_changed_at=utcnow(),
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor="cli", target=f"user:{user.id}", detail={"username": username, "role": "admin"})
    db.session.commit()
    click.echo(f"admin {username} created")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the keyed hash chain and its head; report the first broken link."""
    from webapp.audit import verify_chain

    report = verify_chain()
    if not report.ok:
        _chain_broken(report)
    click.echo(
        f"audit chain ok: {report.checked} events; head {report.head_seq} {report.head_hash} "
        "(keep this line outside the database: a head rewound with its deleted events shows against it)"
    )
    if report.old_key:
        click.echo(
            f"{report.old_key} events are signed with an older key of FANOUT_AUDIT_KEYS: "
            "`flask audit rekey` re-signs them with the first"
        )


@audit_cli.command("rekey")
@click.option(
    "--accept-unkeyed",
    is_flag=True,
    help="Also re-sign plain SHA-256 links (a chain written before FANOUT_AUDIT_KEYS existed).",
)
def audit_rekey(accept_unkeyed: bool) -> None:
    """Verify the chain, then re-sign it with the first key of FANOUT_AUDIT_KEYS (the others can then go)."""
    from webapp.audit import rekey_chain

    report = rekey_chain(accept_unkeyed=accept_unkeyed)
    if not report.ok:
        db.session.rollback()
        _chain_broken(report, "; nothing was re-signed")
    db.session.commit()
    click.echo(
        f"re-signed {report.checked} events with the first key of FANOUT_AUDIT_KEYS "
        f"({report.unkeyed} were unkeyed, {report.old_key} under an older key); the older keys can be dropped"
    )


def _chain_broken(report, outcome: str = "") -> None:
    click.echo(
        f"audit chain BROKEN at event {report.broken_at}: {report.reason} "
        f"({report.checked} events verified before it){outcome}",
        err=True,
    )
    sys.exit(1)


@instruments.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def instruments_load(path: Path) -> None:
    """Load a broker instrument master CSV (Kite's columns), idempotently."""
    from webapp.instruments.master import MasterFormatError, load_master

    with path.open(newline="", encoding="utf-8-sig") as stream:
        try:
            report = load_master(stream)
        except MasterFormatError as exc:
            raise click.ClickException(str(exc)) from None
    db.session.commit()
    for error in report.errors:
        click.echo(f"rejected {error}", err=True)
    click.echo(
        f"loaded {report.loaded} instruments: {report.created} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.errors)} rejected"
    )


@secrets_cli.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored credential and session under the first key of FANOUT_ENCRYPTION_KEYS."""
    from webapp.models import Client
    from webapp.vault import current_vault

    vault, count = current_vault(), 0
    for client in db.session.execute(sa.select(Client)).scalars():
        for column in ("credentials_enc", "session_enc"):
            if getattr(client, column):
                setattr(client, column, vault.rotate(getattr(client, column)))
                count += 1
    db.session.commit()
    click.echo(f"re-encrypted {count} secrets")


@feed.command("run")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds of ticks.")
@click.option("--seed", default=0, show_default=True, help="The paper simulator's seed.")
def feed_run(interval: float, seed: int) -> None:
    """Run the desk's single market-data session (FEED_SOURCE: paper, kite or sharekhan) until interrupted."""
    from webapp.marketfeed.feed import Feed
    from webapp.marketfeed.sources import make_source

    source = make_source(current_app._get_current_object(), seed=seed)
    try:
        Feed(current_app._get_current_object(), source, on_quotes=source.after, interval=interval).run()
    except KeyboardInterrupt:
        click.echo("feed stopped")


def init_app(app: Flask) -> None:
    from webapp.cli_history import history_cli

    for group in (demo, users, audit_cli, instruments, secrets_cli, feed, history_cli):
        app.cli.add_command(group)

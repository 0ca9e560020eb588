"""Settings, read from the environment once, through small typed parsers (Redash style).

`Config.from_env()` builds the settings; `Config.validate()` refuses to start outside demo/test mode
when a secret is missing. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from webapp.brokers import SIMULATED_FEED  # the registry module alone: no adapter is imported here

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("FANOUT_INSTANCE") or ROOT / "instance")  # demo data, secrets, SQLite


class ConfigError(RuntimeError):
    """A setting is missing or malformed: start-up stops with this message."""


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected a boolean, got {value!r}")


def parse_int(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def parse_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _feed_source(value: str | None) -> str:
    """The feed's source: choices come from the broker registry, so a new streaming broker needs no
    edit here (imported late: the registry imports the adapters)."""
    from webapp.brokers import feed_sources

    return _choice(value or SIMULATED_FEED, feed_sources(), "FEED_SOURCE")


def _broker_settings(env: Mapping[str, str]) -> dict[str, str]:
    """Every broker's declared settings, from the environment or the adapter's default (imported
    late: the registry imports the adapters)."""
    from webapp.brokers import broker_settings

    return {key: env.get(key) or default for key, default in broker_settings().items()}


def database_url(value: str | None) -> str:
    if not value:
        return f"sqlite:///{INSTANCE / 'fanout.db'}"
    # Heroku-style URLs and plain postgresql:// go through psycopg 3
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


@dataclass
class Config:
    DEMO_MODE: bool = False
    TESTING: bool = False
    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str = field(default_factory=lambda: database_url(None))
    REDIS_URL: str | None = None
    FANOUT_ENCRYPTION_KEYS: list[str] = field(default_factory=list)
    FANOUT_AUDIT_KEYS: list[str] = field(default_factory=list)  # HMAC keys of the audit chain; the first signs
    PORT: int = 8000
    DEMO_PASSWORD: str = "fanout-demo"
    LOGIN_RATE_LIMIT: str = "5 per minute"
    # requests per API key (webapp/api/) and alerts per webhook (webapp/hooks/); over it: 429 with Retry-After
    API_RATE_LIMIT: str = "600 per minute"
    HOOK_RATE_LIMIT: str = "60 per minute"
    SESSION_COOKIE_HTTPONLY: bool = True
    SESSION_COOKIE_SAMESITE: str = "Lax"
    SESSION_COOKIE_SECURE: bool = False
    WTF_CSRF_TIME_LIMIT: int | None = None  # the token lives as long as the session
    SOCK_SERVER_OPTIONS: dict = field(default_factory=lambda: {"ping_interval": 25})
    BROKER_TIMEOUT_SECONDS: int = 7
    BROKER_POOL_SIZE: int = 128  # broker calls in flight at once per broker, per worker process
    SEND_DEADLINE_SECONDS: int = 30  # a child not sent this long after the ticket is FAILED, not sent late
    FEED_SOURCE: str = SIMULATED_FEED  # the simulator, or a broker that streams (webapp.brokers.feed_sources())
    FEED_CLIENT_ID: int | None = None  # the client whose broker session streams prices (default: first connected)
    FEED_WATCHDOG_SECONDS: int = 30
    PAPER_ALWAYS_OPEN: bool = False  # demo mode keeps the paper market open at any hour
    # the minutes strategies' bars are built from (webapp.marketdata.intervals): "nse" (09:15–15:30 IST)
    # or "all_day" (the demo's always-open market: 24 h from 09:15, every day)
    STRATEGY_SESSION: str = "nse"
    PAPER_LATENCY_MS: int = 0  # model a real broker's round trip (benchmarks)
    PAPER_JITTER_MS: int = 0
    # each broker's own settings (its endpoints: KITE_API_URL, …), declared by its adapter with their
    # defaults and read from the environment here, so each adapter can be pointed at its emulator
    BROKER_SETTINGS: dict[str, str] = field(default_factory=dict)
    # notifications (docs/notifications.md): the Telegram bot and the SMTP server; unset: channel off
    TELEGRAM_BOT_TOKEN: str | None = None
    TELEGRAM_API_URL: str = "https://api.telegram.org"
    SMTP_HOST: str | None = None
    SMTP_PORT: int = 587
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_STARTTLS: bool = True
    MAIL_FROM: str = "fanout@localhost"
    METRICS_TOKEN: str = ""  # the bearer token Prometheus sends to /metrics (docs/operations.md)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        demo = parse_bool(env.get("FANOUT_DEMO"))
        return cls(
            DEMO_MODE=demo,
            TESTING=parse_bool(env.get("FANOUT_TESTING")),
            SECRET_KEY=env.get("SECRET_KEY") or None,
            SQLALCHEMY_DATABASE_URI=database_url(env.get("DATABASE_URL")),
            REDIS_URL=env.get("REDIS_URL") or None,
            FANOUT_ENCRYPTION_KEYS=parse_list(env.get("FANOUT_ENCRYPTION_KEYS")),
            FANOUT_AUDIT_KEYS=parse_list(env.get("FANOUT_AUDIT_KEYS")),
            PORT=parse_int(env.get("PORT"), 8000, "PORT"),
            DEMO_PASSWORD=env.get("DEMO_PASSWORD") or "fanout-demo",
            LOGIN_RATE_LIMIT=env.get("LOGIN_RATE_LIMIT") or "5 per minute",
            API_RATE_LIMIT=env.get("API_RATE_LIMIT") or "600 per minute",
            HOOK_RATE_LIMIT=env.get("HOOK_RATE_LIMIT") or "60 per minute",
            SESSION_COOKIE_SECURE=parse_bool(env.get("SESSION_COOKIE_SECURE"), default=not demo),
            BROKER_TIMEOUT_SECONDS=parse_int(env.get("BROKER_TIMEOUT_SECONDS"), 7, "BROKER_TIMEOUT_SECONDS"),
            BROKER_POOL_SIZE=parse_int(env.get("BROKER_POOL_SIZE"), 128, "BROKER_POOL_SIZE"),
            SEND_DEADLINE_SECONDS=parse_int(env.get("SEND_DEADLINE_SECONDS"), 30, "SEND_DEADLINE_SECONDS"),
            PAPER_ALWAYS_OPEN=parse_bool(env.get("PAPER_ALWAYS_OPEN"), default=demo),
            STRATEGY_SESSION=_strategy_session(env.get("STRATEGY_SESSION"), demo),
            FEED_SOURCE=_feed_source(env.get("FEED_SOURCE")),
            FEED_CLIENT_ID=parse_int(env.get("FEED_CLIENT_ID"), 0, "FEED_CLIENT_ID") or None,
            FEED_WATCHDOG_SECONDS=parse_int(env.get("FEED_WATCHDOG_SECONDS"), 30, "FEED_WATCHDOG_SECONDS"),
            PAPER_LATENCY_MS=parse_int(env.get("PAPER_LATENCY_MS"), 0, "PAPER_LATENCY_MS"),
            PAPER_JITTER_MS=parse_int(env.get("PAPER_JITTER_MS"), 0, "PAPER_JITTER_MS"),
            BROKER_SETTINGS=_broker_settings(env),
            TELEGRAM_BOT_TOKEN=env.get("TELEGRAM_BOT_TOKEN") or None,
            TELEGRAM_API_URL=env.get("TELEGRAM_API_URL") or "https://api.telegram.org",
            SMTP_HOST=env.get("SMTP_HOST") or None,
            SMTP_PORT=parse_int(env.get("SMTP_PORT"), 587, "SMTP_PORT"),
            SMTP_USERNAME=env.get("SMTP_USERNAME") or "",
            SMTP_PASSWORD=env.get("SMTP_PASSWORD") or "",
            SMTP_STARTTLS=parse_bool(env.get("SMTP_STARTTLS"), default=True),
            MAIL_FROM=env.get("MAIL_FROM") or "fanout@localhost",
            METRICS_TOKEN=env.get("METRICS_TOKEN") or "",
        )

    def validate(self) -> None:
        relaxed = self.DEMO_MODE or self.TESTING
        missing = [
            name
            for name, value in (
                ("SECRET_KEY", self.SECRET_KEY),
                ("FANOUT_ENCRYPTION_KEYS", self.FANOUT_ENCRYPTION_KEYS),
                ("FANOUT_AUDIT_KEYS", self.FANOUT_AUDIT_KEYS),
                ("REDIS_URL", self.REDIS_URL),
            )
            if not value
        ]
        if missing and not relaxed:
            raise ConfigError(
                "Fanout will not start: missing " + ", ".join(missing) + ". Set them in the environment "
                "(see README 'Configuration'), or set FANOUT_DEMO=1 for a local demo."
            )
        audit_keys = self.FANOUT_AUDIT_KEYS
        if any(len(key) < 32 for key in (parse_list(audit_keys) if isinstance(audit_keys, str) else audit_keys)):
            raise ConfigError(
                "FANOUT_AUDIT_KEYS: each key needs at least 32 characters (make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        if not self.REDIS_URL:
            raise ConfigError("REDIS_URL is not set: `make run` starts an embedded Redis and sets it for you.")

    def as_mapping(self) -> dict:
        """The settings as the app's config: each broker setting is a key of its own."""
        settings = dict(vars(self))
        return {**settings, **settings.pop("BROKER_SETTINGS")}


def _strategy_session(value: str | None, demo: bool) -> str:
    from webapp.marketdata.intervals import SESSIONS

    name = (value or ("all_day" if demo else "nse")).strip().lower()
    if name not in SESSIONS:
        raise ConfigError(f"STRATEGY_SESSION must be one of {', '.join(sorted(SESSIONS))}, not {value!r}")
    return name

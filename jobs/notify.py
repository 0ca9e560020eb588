"""Notifications, from cron (thin: webapp/notify/): collect the new facts into notifications, send the
due deliveries, and read the Telegram bot's messages for link codes."""

from __future__ import annotations

import logging

from flask import current_app

from jobs.context import app_job
from webapp.extensions import get_redis
from webapp.notify.collect import collect as collect_facts
from webapp.notify.delivery import deliver_due
from webapp.notify.mail import mailer_from_config
from webapp.notify.telegram import TelegramError, bot_from_config, poll_links

log = logging.getLogger(__name__)


def configured_channels(config) -> frozenset[str]:
    return frozenset(
        name for name, on in (("telegram", config.get("TELEGRAM_BOT_TOKEN")), ("email", config.get("SMTP_HOST"))) if on
    )


@app_job
def tick() -> dict:
    """One job per interval for all of it (a job is a fork of the worker: three jobs every few seconds
    would crowd the default queue): collect, then the sends and the link codes when configured."""
    config = current_app.config
    channels = configured_channels(config)
    created = collect_facts(get_redis(), channels)
    if created:
        log.info("op=notify_collect created=%s", len(created))
    out: dict = {"created": len(created)}
    bot = bot_from_config(config)
    if channels:
        out["sent"] = deliver_due(bot, mailer_from_config(config))
    if bot is not None:
        try:
            out["linked"] = len(poll_links(bot))
        except TelegramError as exc:  # Telegram away or the token refused: the next run tries again
            log.warning("op=telegram_updates result=failed error=%s", exc)
    return out

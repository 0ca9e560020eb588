"""`rq worker -c jobs.settings`: one log format for web, workers and cron (key=value, job id stamped).

LOG_LEVEL (default INFO) sets every rq process's level; RQ's per-job lines show at DEBUG only."""

import logging
import os

REDIS_URL = os.environ.get("REDIS_URL")
_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
LOG_LEVEL = _LEVEL if _LEVEL in logging.getLevelNamesMapping() else "INFO"
QUEUES = ["orders", "strategies", "sync", "default"]

DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_id": {"()": "jobs.context.JobIdFilter"}, "rq_chatter": {"()": "jobs.worker.RqChatterFilter"}},
    "formatters": {"kv": {"format": "%(asctime)s level=%(levelname)s logger=%(name)s job_id=%(job_id)s %(message)s"}},
    "handlers": {"console": {"class": "jobs.context.ConsoleHandler", "formatter": "kv", "filters": ["job_id"]}},
    "loggers": {
        "rq.worker": {"filters": ["rq_chatter"]},
        "rq.cron": {"filters": ["rq_chatter"]},
        # urllib3 logs each request's path at DEBUG, and the Telegram Bot API puts the bot's token in
        # the path: never at LOG_LEVEL=debug either
        "urllib3": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

"""`rq worker -c jobs.settings`: one log format for web, workers and cron (key=value, job id stamped)."""

import os

REDIS_URL = os.environ.get("REDIS_URL")
QUEUES = ["orders", "strategies", "sync", "default"]

DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_id": {"()": "jobs.context.JobIdFilter"}},
    "formatters": {"kv": {"format": "%(asctime)s level=%(levelname)s logger=%(name)s job_id=%(job_id)s %(message)s"}},
    "handlers": {"console": {"class": "jobs.context.ConsoleHandler", "formatter": "kv", "filters": ["job_id"]}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

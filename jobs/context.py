"""One Flask app per worker process; each job runs inside its app context.

Workers are started as `rq worker -w jobs.worker.AppWorker`: the app is built once in the parent
before jobs fork, and each work horse disposes the inherited DB connections before using the DB.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from flask import Flask

_app: Flask | None = None
_app_pid: int | None = None


def use_app(app: Flask) -> None:
    """Run jobs in this app (tests and benchmarks that run a worker in-process)."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()


def get_app() -> Flask:
    global _app, _app_pid
    if _app is None:
        from webapp import create_app

        _app = create_app()
    if _app_pid != os.getpid():  # first use in this process (or a forked horse): fresh DB pool
        with _app.app_context():
            from webapp.extensions import db

            db.engine.dispose(close=False)
        _app_pid = os.getpid()
    return _app


def app_job(func: Callable) -> Callable:
    """Run the job inside an app context, with the job id on every log line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with get_app().app_context():
            from webapp.extensions import db

            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper


class JobIdFilter(logging.Filter):
    """Stamps job_id on log records (Redash's CurrentJobFilter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from rq import get_current_job

        job = get_current_job()
        record.job_id = job.id if job else "-"
        return True


class ConsoleHandler(logging.StreamHandler):
    """The rq processes' console handler. `rq cron` stops by raising StopRequested from its signal
    handler; when the signal lands while a log line is being written, logging would catch it, print
    a "Logging error" traceback and carry on, so cron missed its stop. Let it through instead."""

    def handleError(self, record: logging.LogRecord) -> None:
        from rq.exceptions import StopRequested

        error = sys.exc_info()[1]
        if isinstance(error, StopRequested):
            raise error
        super().handleError(record)

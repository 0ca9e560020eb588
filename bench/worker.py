"""RQ worker classes for the experiments of `fanout.py` (docs/BENCHMARKS.md). The stock run uses the
Procfile's jobs.worker.AppWorker; these change one thing each, so a result can say what it buys.

- BENCH_BROKER_POOL_SIZE → app.config["BROKER_POOL_SIZE"] (read by webapp.trading.engine, but not
  by webapp.config from the environment);
- BENCH_DB_POOL → SQLALCHEMY_ENGINE_OPTIONS pool_size (SQLAlchemy's default QueuePool is 5 + 10
  overflow per process). The engine is made in create_app, so the app is built here with the
  override and handed to jobs.context before AppWorker asks for it; the horses fork from it;
- BENCH_WARM=1 → configure the ORM mappers in the worker parent, so each forked horse does not do
  it again on its first query;
- TunedSimpleWorker runs jobs in the worker process itself (RQ's SimpleWorker: no fork per job), so
  mappers, compiled SQL and connections stay warm from one batch to the next.
"""
from __future__ import annotations

import os

from rq import SimpleWorker

from jobs.context import get_app, use_app
from jobs.worker import AppWorker


def _tuned_app():
    from webapp import create_app

    overrides = {}
    if os.environ.get("BENCH_BROKER_POOL_SIZE"):
        overrides["BROKER_POOL_SIZE"] = int(os.environ["BENCH_BROKER_POOL_SIZE"])
    if os.environ.get("BENCH_DB_POOL"):
        overrides["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": int(os.environ["BENCH_DB_POOL"]), "max_overflow": 10}
    app = create_app(overrides)
    if os.environ.get("BENCH_WARM"):
        from sqlalchemy.orm import configure_mappers

        import jobs.orders  # noqa: F401  (the job module, imported once here rather than in each horse)

        configure_mappers()
    return app


class TunedWorker(AppWorker):
    def __init__(self, *args, **kwargs):
        use_app(_tuned_app())
        super().__init__(*args, **kwargs)


class TunedSimpleWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        use_app(_tuned_app())
        super().__init__(*args, **kwargs)
        get_app()

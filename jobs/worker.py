"""The RQ worker class the Procfile starts: builds the Flask app before forking work horses."""
from __future__ import annotations

from rq import Worker

from jobs.context import get_app


class AppWorker(Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        get_app()  # import and configure once; horses inherit it

"""gunicorn settings: threaded workers, since flask-sock holds a thread per WebSocket."""

import os

from gunicorn.glogging import Logger

from webapp.security import loggable_path

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# every open WebSocket holds a thread for its life: size for sockets per worker plus page requests
threads = int(os.environ.get("WEB_THREADS", "128"))
worker_class = "gthread"
timeout = 60
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
access_log_format = 'remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s ms=%(M)s'


class RedactingLogger(Logger):
    """The access log without a webhook's secret: /hooks/<secret> is logged as /hooks/[secret]."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = loggable_path(atoms["U"])
        atoms["r"] = " ".join(loggable_path(part) for part in str(atoms["r"]).split(" "))
        return atoms


logger_class = RedactingLogger


def post_worker_init(worker):
    """Leave the app's startup objects out of the garbage collector's full passes: with them
    (~125,000), each full pass stopped the worker for ~60 ms, mid-request (docs/BENCHMARKS.md)."""
    import gc

    gc.freeze()

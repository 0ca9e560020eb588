"""gunicorn settings: threaded workers, since flask-sock holds a thread per WebSocket."""
import os

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

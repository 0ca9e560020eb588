"""Error pages: a page for a browser, a fragment for htmx, JSON for API clients. Never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from webapp.extensions import db
from webapp.htmx import is_htmx
from webapp.security import loggable_path

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request was not understood.",
    403: "You do not have permission to do that.",
    404: "Nothing here: the page does not exist or is not yours to see.",
    405: "That action is not allowed here.",
    429: "Too many requests. Wait a minute and try again.",
    500: "Something went wrong on our side. Nothing was changed; try again.",
}


JSON_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}

REDIS_UNAVAILABLE = "Redis is unavailable right now, so this cannot be done; try again in a moment."


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json" and not is_htmx()
    )


def render_error(code: int, message: str | None = None):
    message = message or MESSAGES.get(code, "Error")
    if wants_json():  # the API's one error shape (webapp/api/core.py ErrorBody)
        return jsonify(error={"code": JSON_CODES.get(code, "error"), "message": message, "fields": {}}), code
    template = "errors/_error.html" if is_htmx() else "errors/error.html"
    return render_template(template, code=code, message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(400, "Your form expired or was not sent from this site. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 429 and request.endpoint == "auth.login":
            from webapp.auth.routes import login_throttled

            return login_throttled()
        return render_error(error.code or 500, MESSAGES.get(error.code or 500, error.description))

    @app.errorhandler(Exception)
    def unhandled(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        db.session.rollback()
        if isinstance(error, (RedisConnectionError, RedisTimeoutError)):  # Redis away, on a path not drawn without it
            log.warning("event=redis-unavailable path=%s error=%s", loggable_path(request.path), error)
            return render_error(503, REDIS_UNAVAILABLE)
        log.exception("event=unhandled path=%s", loggable_path(request.path))
        return render_error(InternalServerError.code)

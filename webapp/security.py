"""Passwords (argon2) and the password policy; the security headers on every response; the one
check for where a `next` or referrer may send the browser."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, request

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 10
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "1234567890",
        "qwertyuiop",
        "letmein123",
        "iloveyou12",
        "welcome123",
        "admin12345",
        "fanoutfanout",
        "trader1234",
        "0987654321",
        "1111111111",
        "abcdefghij",
    }
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str = "") -> str | None:
    """Why a password is too weak, in words a user can act on; None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 4:
        return "This password is too common or repetitive; choose another."
    if username and username.lower() in password.lower():
        return "The password must not contain the username."
    if password.isdigit() or password.isalpha():
        return "Mix letters with digits or symbols."
    return None


# No inline script anywhere (templates load static/js only; htmx runs with allowEval off, see
# base.html), so an injected <script> or on*= attribute does not run. Styles too: the templates
# carry no style= attributes and htmx's own indicator <style> is turned off.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",  # 'self' covers ws:// and wss:// to this host (CSP level 3)
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=63072000; includeSubDomains"  # two years; only outside demo mode (a demo runs on plain http)


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers without CSP 2
        headers.setdefault("Referrer-Policy", "same-origin")  # brokers' login pages learn nothing of ours
        if not app.config.get("DEMO_MODE"):
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response


_SECRET_IN_PATH = re.compile(r"^(/hooks/)[^/]+")


def loggable_path(path: str | None) -> str:
    """A path fit for a log line: a webhook's secret (its URL is its only credential) replaced."""
    return _SECRET_IN_PATH.sub(r"\1[secret]", path or "")


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None. Browsers read `//host`, `/\\host` and a
    path with a tab or newline inside (which they strip) as another site, so those are refused too."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in target):  # no path of ours needs them
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def same_site_referrer() -> str | None:
    """The page the request came from, as a local path, when it is one of ours."""
    referrer = request.referrer
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.scheme not in ("http", "https") or parts.netloc != request.host:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))

"""One keep-alive connection pool per broker host for the whole process, shared by every client's
adapter, as the official Kite client reuses its pool. Building a `requests.Session` per adapter
cost more CPU than the order call it made (bench/fanout.py, docs/BENCHMARKS.md).

No automatic retries, ever: a retried POST could place a second order. No cookies: the broker
APIs authenticate by header, and one client's cookie must never ride along with another's call.
"""
from __future__ import annotations

import os
import threading
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

POOL_MAXSIZE = 256  # kept-alive connections per host; a bigger burst opens (and then drops) extra ones

_sessions: dict[str, requests.Session] = {}
_lock = threading.Lock()


def shared_session(base_url: str) -> requests.Session:
    parts = urlsplit(base_url)
    key = f"{parts.scheme}://{parts.netloc}"
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_MAXSIZE, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            # The environment (proxies, CA bundle) is read once here instead of on every call,
            # where it was a third of a call's CPU.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(base_url)
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            _sessions[key] = session
        return session


def _forget_after_fork() -> None:
    """A forked process (an RQ work horse) must not share its parent's sockets."""
    global _lock
    _sessions.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

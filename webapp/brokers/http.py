"""The one HTTP client of the broker adapters: `send()` over one process-wide urllib3 pool.

Why urllib3 and not requests: a keep-alive call to the local Kite emulator cost ~460 µs of CPU
through a shared `requests.Session` and ~320 µs through this (docs/BENCHMARKS.md), and a batch of
500 child orders spent most of its Python time there. The adapters need none of
what requests adds (sessions, cookies, redirects, hooks, per-call environment lookups).

Guarantees:
- Never any automatic retry (`retries=False`), and redirects are not followed: a retried POST
  could place a second order. A failed call raises `Timeout` or `TransportError`, once.
- No cookies, ever: urllib3 keeps no cookie jar, and nothing here sends a Cookie header. The
  broker APIs authenticate by header; one client's cookie must never ride along with another's.
- One keep-alive pool per broker host for the whole process, shared by every client's adapter
  (as the official Kite client reuses its pool); a forked process starts with fresh pools.
- Proxies come from the environment (`http_proxy`, `https_proxy`, `no_proxy`), read once per
  origin; TLS is verified against certifi's CA bundle unless REQUESTS_CA_BUNDLE,
  CURL_CA_BUNDLE or SSL_CERT_FILE names another bundle (read once).
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlencode
from urllib.request import getproxies_environment, proxy_bypass_environment

import certifi
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as _TimeoutError
from urllib3.util import parse_url

from webapp.brokers.base import Unavailable

POOL_MAXSIZE = 256  # kept-alive connections per host; a bigger burst opens (and then drops) extra ones

# What requests sent by default, which the brokers' gateways have always seen (the Kite emulator,
# like Kite, gzips instrument dumps only when asked). A caller's header of the same name wins.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
FORM_TYPE = "application/x-www-form-urlencoded"


class TransportError(Exception):
    """No answer: the connection was refused, reset or dropped, or the answer was broken HTTP.

    `sent` is False only when no connection was made, so the broker cannot have seen the request.
    `reason` names the underlying failure (for logs).
    """

    def __init__(self, message: str, *, sent: bool = True, reason: str = ""):
        super().__init__(message)
        self.sent = sent
        self.reason = reason or type(self).__name__


class Timeout(TransportError):
    """No answer within the timeout (connecting, or waiting for the answer when `sent`)."""


class Response:
    __slots__ = ("status", "headers", "content")

    def __init__(self, status: int, headers: Any, content: bytes):
        self.status = status
        self.headers = headers  # urllib3's HTTPHeaderDict: case-insensitive
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers.get("Content-Type", "")), errors="replace")


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | str | None = None,
    form: Any = None,
    query: Any = None,
    timeout: float,
) -> Response:
    """One request, one attempt. `form` (a mapping or pairs) is sent urlencoded with the form
    Content-Type unless `headers` names one; `query` is appended to the URL, encoded the same way.
    Raises Timeout or TransportError when no complete answer came back; any HTTP status is returned."""
    merged = _with_defaults(headers)
    if form:
        body = encode(form)
        if not any(k.lower() == "content-type" for k in headers):
            merged["Content-Type"] = FORM_TYPE
    if query:
        url = f"{url}{'&' if '?' in url else '?'}{encode(query)}"
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is None and method not in ("GET", "HEAD"):
        merged["Content-Length"] = "0"
    try:
        answer = _manager(url).urlopen(
            method,
            url,
            body=body,
            headers=merged,
            timeout=timeout,
            retries=False,
            redirect=False,
            preload_content=True,
            decode_content=True,
        )
    except NewConnectionError as exc:  # refused, unresolvable: nothing reached the broker
        raise TransportError(str(exc), sent=False, reason=type(exc).__name__) from exc
    except ConnectTimeoutError as exc:
        raise Timeout(str(exc), sent=False, reason=type(exc).__name__) from exc
    except _TimeoutError as exc:
        raise Timeout(str(exc), reason=type(exc).__name__) from exc
    except (HTTPError, OSError) as exc:  # dropped, reset, broken HTTP, TLS, proxy
        raise TransportError(str(exc), reason=type(exc).__name__) from exc
    return Response(answer.status, answer.headers, answer.data)


class CallLog:
    """One broker's log lines, key=value and free of secrets: a line per call
    (`broker=… op=… client=… status=… ms=…`) and, for an answer the adapter could not use, its raw text
    with the broker's secret fields masked (`"jwtToken":"***"`) and capped at 500 characters."""

    def __init__(self, logger: logging.Logger, broker: str, secret_fields: Iterable[str]):
        self.logger, self.broker = logger, broker
        names = "|".join(re.escape(name) for name in secret_fields)
        self._secrets = re.compile(rf'"({names})"\s*:\s*"[^"]*"', re.IGNORECASE)

    def redact(self, text: str) -> str:
        return self._secrets.sub(lambda m: f'"{m.group(1)}":"***"', text)[:500]

    def call(self, op: str, client: str, status: Any, started: float, **extra: Any) -> None:
        tail = "".join(f" {k}={v}" for k, v in extra.items())
        ms = (time.monotonic() - started) * 1000
        self.logger.info("broker=%s op=%s client=%s status=%s ms=%d%s", self.broker, op, client, status, ms, tail)

    def raw(self, op: str, client: str, response: Response) -> None:
        self.logger.warning(
            "broker=%s op=%s client=%s status=%s raw=%r",
            self.broker,
            op,
            client,
            response.status,
            self.redact(response.text),
        )


def call(
    method: str, url: str, *, label: str, log: CallLog, op: str, client: str, outcome: str, **request: Any
) -> Response:
    """`send()` as an adapter's wire uses it: logged (`log.call`), and a failure with no answer raised
    as the port's Unavailable, saying whether the broker may have the request: "could not be reached;
    nothing was sent" when no connection was made, else "did not answer" / "closed the connection"
    followed by `outcome` (what the trader should know: "the order may or may not be placed").
    `request` is send()'s keyword arguments (headers, body, form, query, timeout)."""
    started = time.monotonic()
    try:
        response = send(method, url, **request)
    except TransportError as exc:
        timed_out = isinstance(exc, Timeout)
        log.call(op, client, "timeout" if timed_out else "connection-error", started, reason=exc.reason)
        if not exc.sent:
            raise Unavailable(f"{label} could not be reached; nothing was sent") from None
        if timed_out:
            raise Unavailable(f"{label} did not answer in {request['timeout']:g} s; {outcome}") from None
        raise Unavailable(f"{label} closed the connection without an answer; {outcome}") from None
    log.call(op, client, response.status, started)
    return response


def encode(pairs: Any) -> str:
    """A form or query string exactly as requests encoded one: a mapping or (key, value) pairs,
    list values repeated, None values left out, quote_plus escaping."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out: list[tuple[Any, Any]] = []
    for key, values in items:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            values = [values]
        out.extend((key, v) for v in values if v is not None)
    return urlencode(out, doseq=True)


def _with_defaults(headers: Mapping[str, str]) -> dict[str, str]:
    given = {k.lower() for k in headers}
    merged = {k: v for k, v in DEFAULT_HEADERS.items() if k.lower() not in given}
    merged.update(headers)
    return merged


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip("\"'"):
            charset = value.strip().strip("\"'")
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"


# ---------------------------------------------------------------------------- pools

_managers: dict[str, urllib3.PoolManager] = {}  # origin -> the manager its calls go through
_direct: urllib3.PoolManager | None = None
_lock = threading.Lock()


def _manager(url: str) -> urllib3.PoolManager:
    scheme, _, rest = url.partition("//")
    origin = scheme + "//" + rest.split("/", 1)[0].split("?", 1)[0]
    manager = _managers.get(origin)
    if manager is None:
        with _lock:
            manager = _managers.get(origin) or _new_manager(origin)
            _managers[origin] = manager
    return manager


def _new_manager(origin: str) -> urllib3.PoolManager:
    global _direct
    parts = parse_url(origin)
    proxies = getproxies_environment()
    proxy = proxies.get((parts.scheme or "").lower()) or proxies.get("all")
    if proxy and not proxy_bypass_environment(parts.netloc or "", proxies):
        if "://" not in proxy:
            proxy = "http://" + proxy
        auth = parse_url(proxy).auth
        proxy_headers = (
            urllib3.make_headers(proxy_basic_auth=":".join(unquote(p) for p in auth.split(":", 1))) if auth else None
        )
        return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **_pool_options())
    if _direct is None:
        _direct = urllib3.PoolManager(**_pool_options())
    return _direct


def _pool_options() -> dict[str, Any]:
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
        or certifi.where()
    )
    where = {"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}
    return dict(maxsize=POOL_MAXSIZE, block=False, retries=False, cert_reqs="CERT_REQUIRED", **where)


def _forget_after_fork() -> None:
    """A forked process (an RQ work horse) must not share its parent's sockets."""
    global _managers, _direct, _lock
    _managers, _direct, _lock = {}, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

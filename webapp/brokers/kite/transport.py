"""HTTP transport for Kite Connect v3: the shared connection pool, headers, envelopes, typed errors.

Kite answers `{"status": "success", "data": ...}` or `{"status": "error", "message", "error_type"}`
with a 4xx/5xx code (kite.trade/docs/connect/v3/exceptions). This module turns every answer into
data or one of the port's typed errors, and is the only place that touches the network.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from webapp.brokers import http
from webapp.brokers.base import AuthExpired, InvalidInput, RateLimited, Rejected, Unavailable

log = logging.getLogger(__name__)

# Calls that change orders: an ambiguous answer here means the change may or may not exist.
ORDER_OPS = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not be applied",
    "cancel": "the order may or may not be cancelled",
}
READ_OUTCOME = "nothing was changed; try again"

# error_type -> port error, for answers below 500 (anything >= 500 is ambiguous, see _error_for).
_REFUSALS = {"OrderException", "MarginException", "HoldingException", "UserException", "PermissionException"}
_OUTAGES = {"NetworkException", "DataException", "GeneralException"}

# JSON keys whose values are secrets wherever they appear in a logged body.
_SECRET_KEYS = re.compile(
    r'("?(?:access_token|refresh_token|public_token|enctoken|request_token|api_secret|checksum|password|totp)"?'
    r'\s*[:=]\s*"?)([^",&\s}]+)'
)


def outcome_of(op: str) -> str:
    return ORDER_OPS.get(op, READ_OUTCOME)


class KiteTransport:
    """Sends one request and returns Kite's `data` (JSON) or the raw body (CSV)."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        api_key: str,
        access_token: str | None,
        client: str,
        secrets: Iterable[str] = (),
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.access_token = access_token
        self.client = client
        self._secrets = [s for s in secrets if s]

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client
        (webapp/brokers/http.py, which never retries a request)."""

    # ------------------------------------------------------------------ requests

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        query: Any = None,
        json_text: str | None = None,
        auth: bool = True,
        csv: bool = False,
    ) -> Any:
        headers = {"X-Kite-Version": "3", "User-Agent": "fanout-kite/1"}
        if auth:
            if not self.access_token:
                raise AuthExpired("Not logged in to Kite; log in to Kite again")
            headers["Authorization"] = f"token {self.api_key}:{self.access_token}"
        if json_text is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            response = http.send(
                method,
                self.base_url + path,
                headers=headers,
                body=json_text,
                form=form if json_text is None else None,
                query=query,
                timeout=self.timeout,
            )
        except http.Timeout as exc:
            self._log_failure(op, "timeout", exc)
            raise Unavailable(f"Kite did not answer in {self.timeout:g} s; {outcome_of(op)}") from None
        except http.TransportError as exc:
            self._log_failure(op, "connection", exc)
            raise Unavailable(f"Kite closed the connection without an answer; {outcome_of(op)}") from None
        elapsed_ms = int((time.monotonic() - started) * 1000)
        log.debug("broker=kite op=%s client=%s status=%s ms=%s", op, self.client, response.status, elapsed_ms)
        return self._read(op, response, csv)

    def _read(self, op: str, response: http.Response, csv: bool) -> Any:
        status = response.status
        if status == 429:
            self._log_failure(op, "429", response.text)
            raise RateLimited(
                "Kite rate limit reached (HTTP 429 Too many requests); not accepted, retry after a pause",
                retry_after=_retry_after(response),
            )
        payload = _json_or_none(response)
        if isinstance(payload, dict) and (payload.get("status") == "error" or payload.get("error_type")):
            self._log_failure(op, str(status), response.text)
            raise _error_for(op, status, str(payload.get("error_type") or ""), str(payload.get("message") or ""))
        if status >= 400:
            self._log_failure(op, str(status), response.text)
            raise Unavailable(f"Kite answered HTTP {status} without details; {outcome_of(op)}")
        if csv and "json" not in response.headers.get("Content-Type", ""):
            return response.content
        if not isinstance(payload, dict) or payload.get("status") != "success" or "data" not in payload:
            self._log_failure(op, f"{status}-unreadable", response.text)
            raise Unavailable(f"Kite sent an unreadable answer (HTTP {status}); {outcome_of(op)}")
        return payload["data"]

    # ------------------------------------------------------------------ logging

    def redact(self, text: str) -> str:
        for secret in self._secrets + [self.access_token or ""]:
            if secret:
                text = text.replace(secret, "***")
        return _SECRET_KEYS.sub(r"\1***", text)

    def _log_failure(self, op: str, status: str, raw: Any) -> None:
        reason = self.redact(str(raw))[:300].replace("\n", " ")
        log.warning("broker=kite op=%s client=%s status=%s reason=%r", op, self.client, status, reason)


def _json_or_none(response: http.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _error_for(op: str, status: int, error_type: str, message: str) -> Exception:
    """Map one Kite error envelope to a port error.

    Kite staff: "if you get any non-400 status for order placement, check the order book"
    (kite.trade forum 41029), so a 5xx is ambiguous whatever its error_type says.
    InputException on an order call is Kite's pre-trade validation refusing this order (tick
    size, circuit band, market protection, quantity): the trader sees it as a rejection with
    Kite's reason. On any other call it means our request was malformed: InvalidInput.
    """
    if error_type == "TokenException":
        return AuthExpired(f"Kite session expired or invalid ({message}); log in to Kite again")
    if status >= 500 or error_type in _OUTAGES:
        return Unavailable(f"Kite is unavailable ({error_type or 'HTTP ' + str(status)}: {message}); {outcome_of(op)}")
    if error_type == "InputException":
        return Rejected(message) if op in ORDER_OPS else InvalidInput(f"Kite refused the request: {message}")
    if error_type in _REFUSALS:
        return Rejected(message)
    return Rejected(message or f"Kite refused the request (HTTP {status})")

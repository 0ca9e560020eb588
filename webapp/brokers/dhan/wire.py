"""HTTP transport for DhanHQ v2: headers, exact JSON, and the DH-9xx error mapping.

Every call carries `access-token` (the 24-hour JWT) and `client-id` (the Dhan client id); bodies
are JSON and also carry `dhanClientId`, as the official SDK sends them. A 2xx answer is the data
itself (no envelope); anything else should be `{"errorType", "errorCode", "errorMessage"}`
(reference/brokers-upstox-dhan.md §2.7), translated here into the port's typed errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from webapp.brokers import http
from webapp.brokers.base import AuthExpired, InvalidInput, RateLimited, Rejected, Unavailable
from webapp.jsonutil import exact_json

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.dhan.co/v2"
DEFAULT_TIMEOUT = 7.0
BROKER = "Dhan"

AUTH_CODES = frozenset({"DH-901", "DH-902"})  # invalid/expired token or client id; no API access
RATE_CODE = "DH-904"
INPUT_CODES = frozenset({"DH-905"})
ORDER_CODES = frozenset({"DH-903", "DH-906", "DH-907"})  # account/segment, RMS/exchange refusal, data
UNKNOWN_CODES = frozenset({"DH-908", "DH-909", "DH-910"})  # internal, network, other: outcome unknown

OUTCOMES = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not have been applied",
    "cancel": "the order may or may not be cancelled",
    "login": "try logging in again",
}

CALLS = http.CallLog(log, "dhan", ("accessToken", "access-token", "token"))


class DhanWire:
    """Sends one request over the process's shared connection pool and returns the parsed JSON.

    Never retries a request (webapp/brokers/http.py)."""

    def __init__(self, *, client_id: str, options: Mapping[str, Any]):
        self.base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.client_id = client_id

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        token: str,
        body: Mapping[str, Any] | None = None,
        url: str | None = None,
        query: Mapping[str, str] | None = None,
        login: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": "application/json", "client-id": self.client_id}
        if token:
            headers["access-token"] = token
        payload = None
        if body is not None:
            payload = exact_json({"dhanClientId": self.client_id, **body}).encode("utf-8")
        outcome = OUTCOMES.get(op, "try again")
        response = http.call(
            method,
            url or self.base_url + path,
            label=BROKER,
            log=CALLS,
            op=op,
            client=self.client_id,
            outcome=outcome,
            body=payload,
            headers=headers,
            query=query,
            timeout=self.timeout,
        )
        return self._answer(op, response, outcome, login)

    def _answer(self, op: str, response: http.Response, outcome: str, login: bool) -> Any:
        code = response.status
        try:
            data = json.loads(response.text, parse_float=Decimal) if response.content else None
        except ValueError:
            data = None
        if 200 <= code < 300:
            if data is None:
                CALLS.raw(op, self.client_id, response)
                raise Unavailable(f"{BROKER} sent an unreadable answer (HTTP {code}); {outcome}")
            return data
        CALLS.raw(op, self.client_id, response)
        error = data if isinstance(data, dict) else {}
        errorcode = str(error.get("errorCode") or "").strip().upper()
        message = str(error.get("errorMessage") or "").strip()
        if code == 429 or errorcode == RATE_CODE:
            raise RateLimited(
                f"{BROKER} is rate limiting this account; wait and retry", retry_after=_retry_after(response)
            )
        if not errorcode:
            # a gateway's HTML page, an empty 5xx: nothing says whether the request was acted on
            raise Unavailable(f"{BROKER} answered HTTP {code}; {outcome}")
        if errorcode in UNKNOWN_CODES:
            raise Unavailable(f"{BROKER} reported an error ({message or errorcode}); {outcome}")
        if login:
            raise Rejected(message or f"{BROKER} refused the login ({errorcode})")
        if errorcode in AUTH_CODES:
            raise AuthExpired(f"{BROKER} session is no longer valid ({message or errorcode}); log in again")
        if errorcode in INPUT_CODES and op not in ("place", "modify", "cancel"):
            raise InvalidInput(f"{BROKER} refused the request: {message or errorcode}")
        raise Rejected(f"{BROKER}: {message or errorcode}")


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None

"""HTTP transport for the Upstox API (v2/v3): hosts, headers, exact JSON, and the error mapping.

Every call carries `Authorization: Bearer <access token>` and `Accept: application/json`; v2
routes also `Api-Version: 2.0` (reference/brokers-upstox-dhan.md §1.3). Place, modify and cancel
go to the order host (api-hft.upstox.com), everything else to the API host (§1.2). Answers come in
`{"status": "success", "data": ...}`; errors as HTTP 4xx/5xx with
`{"status": "error", "errors": [{"errorCode", "message", ...}]}` (§1.7), translated here into the
port's typed errors so the adapter only ever sees `data`.
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

API_URL = "https://api.upstox.com"
ORDER_URL = "https://api-hft.upstox.com"
ASSETS_URL = "https://assets.upstox.com"  # the daily instrument files
INSTRUMENTS_PATH = "/market-quote/instruments/exchange/NSE.json.gz"
FILE_PATH = "/market-quote/instruments/exchange/{exchange}.json.gz"  # NSE, BSE
DEFAULT_TIMEOUT = 7.0
BROKER = "Upstox"

AUTH_CODES = frozenset({"UDAPI100050", "UDAPI100067"})  # invalid token; not allowed with the extended token
RATE_CODES = frozenset({"UDAPI10005"})
SERVER_CODES = frozenset({"UDAPI100500"})
# The desk's own mistakes the broker caught: bad field values, missing fields (§1.7).
INPUT_CODES = frozenset(
    {
        "UDAPI1004",
        "UDAPI1007",
        "UDAPI1055",
        "UDAPI1056",
        "UDAPI1023",
        "UDAPI1010",
        "UDAPI1021",
        "UDAPI1146",
        "UDAPI1147",
    }
)
NOT_FOUND = "UDAPI100010"

OUTCOMES = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not have been applied",
    "cancel": "the order may or may not be cancelled",
    "login": "try logging in again",
}

CALLS = http.CallLog(log, "upstox", ("access_token", "extended_token", "client_secret", "code"))


class UpstoxError(Exception):
    """An error envelope, before it is mapped (the adapter looks at the code for a few reads)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def order_host(api_url: str) -> str:
    """The order host when none is set: Upstox's HFT host for the real API, else the API host
    itself (an emulator or a proxy that serves both)."""
    return ORDER_URL if api_url.rstrip("/") == API_URL else api_url


def assets_host(api_url: str) -> str:
    """The instrument files' host when none is set: Upstox's assets host for the real API, else the
    API host itself."""
    return ASSETS_URL if api_url.rstrip("/") == API_URL else api_url


class UpstoxWire:
    """One request, one attempt (webapp/brokers/http.py); the shared connection pool."""

    def __init__(self, *, client_code: str, options: Mapping[str, Any]):
        self.base_url = str(options.get("base_url") or API_URL).rstrip("/")
        self.order_url = str(options.get("order_url") or order_host(self.base_url)).rstrip("/")
        self.assets_url = str(options.get("assets_url") or assets_host(self.base_url)).rstrip("/")
        self.instruments_url = self.assets_url + INSTRUMENTS_PATH
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.client_code = client_code

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        token: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        order: bool = False,
        v2: bool = True,
        raw: bool = False,
    ) -> Any:
        """The answer's `data`, or the port's typed error (UpstoxError for an error envelope when
        `raw`: for reads that look at the code)."""
        headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
        if v2:
            headers["Api-Version"] = "2.0"
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = exact_json(body).encode("utf-8")
        url = (self.order_url if order else self.base_url) + path
        envelope = self._send(op, method, url, headers=headers, body=payload, query=query, raw=raw)
        if str(envelope.get("status", "")).lower() not in ("success", "partial_success"):
            raise Unavailable(f"{BROKER} sent an answer without success; {OUTCOMES.get(op, 'try again')}")
        return envelope.get("data")

    def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The code exchange: form-encoded, answered flat (no envelope) (§1.3)."""
        headers = {"Accept": "application/json", "Api-Version": "2.0"}
        url = self.base_url + "/v2/login/authorization/token"
        return self._send("login", "POST", url, headers=headers, form=form, flat=True)

    def file_url(self, exchange: str) -> str:
        """The daily instrument file of one exchange (NSE.json.gz, BSE.json.gz)."""
        return self.assets_url + FILE_PATH.format(exchange=exchange)

    def download(self, url: str, timeout: float | None = None) -> bytes:
        """An instrument file (no auth). The timeout is per connect and per read, not for the whole body."""
        wait = timeout if timeout is not None else max(self.timeout, 30.0)
        try:
            response = http.send("GET", url, headers={"Accept": "*/*"}, timeout=wait)
        except http.TransportError:
            raise Unavailable(f"{BROKER}'s instrument file did not download; try again") from None
        if response.status != 200:
            raise Unavailable(f"{BROKER}'s instrument file answered HTTP {response.status}; try again")
        return response.content

    def _send(
        self,
        op: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        form: Any = None,
        query: Any = None,
        flat: bool = False,
        raw: bool = False,
    ) -> dict[str, Any]:
        outcome = OUTCOMES.get(op, "try again")
        response = http.call(
            method,
            url,
            label=BROKER,
            log=CALLS,
            op=op,
            client=self.client_code,
            outcome=outcome,
            headers=headers,
            body=body,
            form=form,
            query=query,
            timeout=self.timeout,
        )
        try:
            envelope = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            envelope = None
        if response.status == 200 and isinstance(envelope, dict) and (flat or "status" in envelope):
            return envelope
        CALLS.raw(op, self.client_code, response)
        code, message = _first_error(envelope)
        if response.status == 429 or code in RATE_CODES:
            raise RateLimited(f"{BROKER} is rate limiting this account ({code or 429}); wait and retry")
        if response.status >= 500 or code in SERVER_CODES:
            raise Unavailable(f"{BROKER} answered HTTP {response.status}; {outcome}")
        if not isinstance(envelope, dict) or not code:
            raise Unavailable(f"{BROKER} sent an unreadable answer (HTTP {response.status}); {outcome}")
        if raw:
            raise UpstoxError(response.status, code, message)
        raise error_for(op, response.status, code, message)


def _first_error(envelope: Any) -> tuple[str, str]:
    if not isinstance(envelope, dict):
        return "", ""
    errors = envelope.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return "", ""
    first = errors[0]
    code = str(first.get("errorCode") or first.get("error_code") or "").strip().upper()
    return code, str(first.get("message") or "").strip()


def error_for(op: str, status: int, code: str, message: str) -> Exception:
    text = f"{message or 'refused'} ({code})"
    if op == "login":  # a refused code exchange is the user's to redo, not a dead session
        return Rejected(f"{BROKER} refused the login: {text}")
    if code in AUTH_CODES or status == 401:
        return AuthExpired(f"{BROKER} session is no longer valid ({text}); log in again")
    if code in INPUT_CODES:
        return InvalidInput(f"{BROKER} refused the request: {text}")
    return Rejected(f"{BROKER} refused the request: {text}")

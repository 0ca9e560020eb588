"""HTTP transport for Angel One SmartAPI: headers, exact JSON, and the error mapping.

Every SmartAPI call carries the same header set (X-PrivateKey = the app's API key, X-UserType USER,
X-SourceID WEB, the client's local/public IP and MAC) and, on the secure routes, `Authorization:
Bearer <jwtToken>`. Answers come in one envelope, `{"status": true|false, "message", "errorcode",
"data"}`; the gateway in front answers a bad or expired JWT with `{"success": false, "message":
"Invalid Token", "errorCode": "AG8001"}` and a call over the rate limit with the plain text "Access
denied because of exceeding access rate". Everything that is not a successful envelope is turned
into the port's typed errors here, so the adapter only ever sees `data`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from webapp.brokers import http
from webapp.brokers.base import AuthExpired, InvalidInput, RateLimited, Rejected, Unavailable
from webapp.brokers.pacing import Pacer
from webapp.jsonutil import exact_json

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://apiconnect.angelone.in"
DEFAULT_TIMEOUT = 7.0
BROKER = "Angel One"

# AG8001 invalid token, AG8002 token expired, AG8003 token missing; AB1010 AMX session expired,
# AB1011 client not logged in; AB8050/AB8051 refresh token invalid/expired (SmartAPI response codes).
AUTH_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AB1010", "AB1011", "AB8050", "AB8051"})
# AB1004 "Something went wrong, please try after some time", AB2000 error not specified, AB2001
# internal error: the broker could not say what happened.
TECHNICAL_CODES = frozenset({"AB1004", "AB2000", "AB2001"})
# The request itself is wrong for Angel (variety, symbol, product, tag length): the desk's mistake.
INPUT_CODES = frozenset({"AB1008", "AB1009", "AB1012", "AB4008"})
RATE_WORDS = ("exceeding access rate", "access denied because of exceeding")

OUTCOMES = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not have been applied",
    "cancel": "the order may or may not be cancelled",
    "login": "try logging in again",
}

# Angel's per-client read limits (requests a second, smartapi.angelbroking.com topic 4387). A read is
# paced in this process so that a sync's reads and a modify's or cancel's order-book read a moment
# apart wait their turn instead of drawing the gateway's refusal; other processes are not coordinated
# (their refusals come back as RateLimited).
READS_PER_SECOND = {
    "order_book": 1,
    "trade_book": 1,
    "positions": 1,
    "holdings": 1,
    "funds": 2,
    "quotes": 10,
    "margin": 10,
    "candles": 3,
}
PACE_MARGIN = 1.05  # a little slower than the limit: the gateway's window and ours are not aligned


PACER = Pacer()  # per (client, endpoint) in this process

CALLS = http.CallLog(log, "angel", ("jwtToken", "refreshToken", "feedToken", "password", "totp", "mpin"))


class AngelWire:
    """Sends one request over the process's shared pool and returns the SUCCESS envelope's data.

    Never retries a request (webapp/brokers/http.py)."""

    def __init__(self, *, api_key: str, client_code: str, options: Mapping[str, Any]):
        self.base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.client_code = client_code
        # options["read_interval"]: seconds between two reads of one endpoint (None: Angel's limit)
        self.read_interval = options.get("read_interval")
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-UserType": "USER",
            "X-SourceID": "WEB",
            "X-ClientLocalIP": str(options.get("client_local_ip", "127.0.0.1")),
            "X-ClientPublicIP": str(options.get("client_public_ip", "127.0.0.1")),
            "X-MACAddress": str(options.get("mac_address", "00:00:00:00:00:00")),
            "X-PrivateKey": api_key,
        }

    def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None,
        login: bool = False,
        url: str | None = None,
    ) -> Any:
        """The envelope's `data` of a successful call, or the port's typed error."""
        rate = READS_PER_SECOND.get(op)
        if rate:
            interval = PACE_MARGIN / rate if self.read_interval is None else float(self.read_interval)
            PACER.wait((self.client_code, op), 1, interval)
        headers = dict(self.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        outcome = OUTCOMES.get(op, "try again")
        response = http.call(
            method,
            url or self.base_url + path,
            label=BROKER,
            log=CALLS,
            op=op,
            client=self.client_code,
            outcome=outcome,
            body=exact_json(body).encode("utf-8") if body is not None else None,
            headers=headers,
            timeout=self.timeout,
        )
        return self._data(op, response, outcome, login)

    def _data(self, op: str, response: http.Response, outcome: str, login: bool) -> Any:
        code = response.status
        text = response.text
        if code == 429 or any(word in text[:200].lower() for word in RATE_WORDS):
            raise RateLimited(f"{BROKER} is rate limiting this account; wait and retry", retry_after=1.0)
        if code >= 500:
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} answered HTTP {code}; {outcome}")
        try:
            envelope = json.loads(text, parse_float=Decimal)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not ("status" in envelope or "success" in envelope):
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} sent an unreadable answer (HTTP {code}); {outcome}")
        if envelope.get("status") is True and code < 400:
            return envelope.get("data")
        CALLS.raw(op, self.client_code, response)
        raise _error_for(envelope, code, outcome, login)


def _error_for(envelope: Mapping[str, Any], http_status: int, outcome: str, login: bool) -> Exception:
    message = str(envelope.get("message") or "").strip()
    errorcode = str(envelope.get("errorcode") or envelope.get("errorCode") or "").strip().upper()
    what = message or errorcode or f"HTTP {http_status}"
    if errorcode in TECHNICAL_CODES:
        return Unavailable(f"{BROKER} reported a technical error ({what}); {outcome}")
    if login:  # a refused login (wrong MPIN, TOTP, client code or API key) is the user's to fix
        return Rejected(message or f"{BROKER} refused the login ({errorcode or http_status})")
    if errorcode in AUTH_CODES or http_status == 401 or "invalid token" in message.lower():
        return AuthExpired(f"{BROKER} session is no longer valid ({what}); log in again")
    if errorcode in INPUT_CODES:
        return InvalidInput(f"{BROKER} refused the request: {what}")
    return Rejected(message or f"{BROKER} refused the request ({errorcode or http_status})")

"""HTTP transport for the Motilal Oswal OpenAPI: headers, exact JSON, and the error mapping.

Every Motilal call is a POST with a JSON body and the same header set (brokers.md §2.4). Answers
come in one envelope, `{"status": "SUCCESS"|"FAILURE"|"ERROR", "message", "errorcode", "data"}`;
anything but SUCCESS is an error, translated here into the port's typed errors so the adapter
methods only ever see a successful envelope.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from webapp.brokers import http
from webapp.brokers.base import AuthExpired, RateLimited, Rejected, Unavailable
from webapp.jsonutil import exact_json

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://openapi.motilaloswal.com"
DEFAULT_TIMEOUT = 7.0
USER_AGENT = "MOSL/V.1.1.0"
BROKER = "Motilal Oswal"

# Documented codes: MO1001 invalid user id or auth token, MO8000 technical error (brokers.md §2.7);
# login refusals use the MOSL1xx family ("MOSL100 Login Id/Password Is Invalid").
AUTH_CODES = frozenset({"MO1001"})
TECHNICAL_CODES = frozenset({"MO8000"})
# Matched in messages only when the code is missing; "session" alone would catch "market session".
AUTH_WORDS = ("auth token", "authtoken", "session expired", "invalid session", "login again")

# What a trader should understand when the outcome of a call is unknown.
OUTCOMES = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not have been applied",
    "cancel": "the order may or may not be cancelled",
    "login": "try logging in again",
}

CALLS = http.CallLog(log, "motilal", ("AuthToken", "password", "totp", "2FA", "otp"))


class MotilalWire:
    """POSTs JSON over the process's shared connection pool and returns the SUCCESS envelope.

    Never retries a request (webapp/brokers/http.py)."""

    def __init__(
        self, *, api_key: str, vendor_info: str, client_code: str, options: Mapping[str, Any], reads_per_second: int
    ):
        self.base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.client_code = client_code
        self._static_headers = self._device_headers(api_key, vendor_info, options)
        # Motilal allows 2 calls/s for everything but orders. Methods that need several reads in
        # a row (quotes, margin) pace themselves instead of tripping over the broker's 429.
        interval = options.get("read_interval")
        self.read_interval = 1.1 / reads_per_second if interval is None else float(interval)
        self._pace_lock = threading.Lock()
        self._last_read = 0.0

    @staticmethod
    def _device_headers(api_key: str, vendor_info: str, options: Mapping[str, Any]) -> dict[str, str]:
        # The desk is a server, not a browser; Motilal still wants the device fields (SourceId WEB
        # needs browsername/browserversion). The public IP should be the desk's registered static IP.
        return {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "ApiKey": api_key,
            "vendorinfo": vendor_info,
            "SourceId": "WEB",
            "ClientLocalIp": str(options.get("client_local_ip", "127.0.0.1")),
            "ClientPublicIp": str(options.get("client_public_ip", "127.0.0.1")),
            "MacAddress": str(options.get("mac_address", "00:00:00:00:00:00")),
            "osname": "Linux",
            "osversion": "6",
            "devicemodel": "server",
            "manufacturer": "unknown",
            "productname": "Fanout",
            "productversion": "1.0",
            "installedappid": str(options.get("installed_app_id", "fanout")),
            "latitude": "0.0000",
            "longitude": "0.0000",
            "sdkversion": "Fanout 1.0",
            "browsername": "Chrome",
            "browserversion": "120.0",
        }

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client."""

    def _pace(self) -> None:
        with self._pace_lock:
            wait = self._last_read + self.read_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_read = time.monotonic()

    def post(
        self, op: str, path: str, body: Mapping[str, Any], *, token: str, read: bool = False, login: bool = False
    ) -> dict[str, Any]:
        """POST and return the SUCCESS envelope, or raise the port's typed error."""
        if read:
            self._pace()
        headers = dict(self._static_headers, Authorization=token)
        outcome = OUTCOMES.get(op, "try again")
        response = http.call(
            "POST",
            self.base_url + path,
            label=BROKER,
            log=CALLS,
            op=op,
            client=self.client_code,
            outcome=outcome,
            body=exact_json(body).encode("utf-8"),
            headers=headers,
            timeout=self.timeout,
        )
        return self._envelope(op, response, outcome, login)

    def _envelope(self, op: str, response: http.Response, outcome: str, login: bool) -> dict[str, Any]:
        code = response.status
        if code == 429:
            raise RateLimited(
                f"{BROKER} is rate limiting this account; wait and retry", retry_after=_retry_after(response)
            )
        if code >= 500:
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} answered HTTP {code}; {outcome}")
        try:
            envelope = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or "status" not in envelope:
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} sent an unreadable answer (HTTP {code}); {outcome}")
        if str(envelope["status"]).upper() == "SUCCESS":
            return envelope
        CALLS.raw(op, self.client_code, response)
        raise _error_for(envelope, code, outcome, login)


def _error_for(envelope: Mapping[str, Any], http_status: int, outcome: str, login: bool) -> Exception:
    message = str(envelope.get("message") or "").strip()
    errorcode = str(envelope.get("errorcode") or "").strip().upper()
    if errorcode in TECHNICAL_CODES:
        return Unavailable(f"{BROKER} reported a technical error ({message or errorcode}); {outcome}")
    if login:  # a refused login (wrong password, 2FA or TOTP) is the user's to fix, not a dead session
        return Rejected(message or f"{BROKER} refused the login ({errorcode})")
    if (
        errorcode in AUTH_CODES
        or errorcode.startswith("MOSL")
        or http_status in (401, 403)
        or any(word in message.lower() for word in AUTH_WORDS)
    ):
        return AuthExpired(f"{BROKER} session is no longer valid ({message or errorcode}); log in again")
    return Rejected(message or f"{BROKER} refused the request ({errorcode or http_status})")


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None

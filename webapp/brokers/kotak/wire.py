"""HTTP transport for the Kotak Neo Trade API (v2): headers, jData bodies, the base URL check and
the error mapping.

Three kinds of call (Kotak's v2 FAQ, "Which headers do I pass"):
- login, on the fixed login host (the KOTAK_API_URL setting): JSON bodies, headers
  `Authorization: <consumer key>` (plain, no Bearer) and `neo-fin-key: neotradeapi`;
- orders, reports, portfolio, limits and margins, on the session's `baseUrl`: headers `Auth`
  (session token), `Sid` (session sid) and `neo-fin-key`; POST bodies form-encoded as one field
  `jData` holding JSON;
- quotes and the scrip master, on the session's `baseUrl`: only `Authorization: <consumer key>`.

Answers: `{"stat": "Ok", ...}` or `{"stat": "Not_Ok", "emsg", "stCode"}`; login answers
`{"data": {...}}` or `{"status": "error", "message", "errorCode"}`. Everything that is not a
success is turned here into the port's typed errors.

The session's baseUrl comes from the broker's answer, and the session token rides on every call to
it, so a baseUrl is used only when it is trusted (see `trusted_base_url`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from webapp.brokers import http
from webapp.brokers.base import AuthExpired, BrokerError, RateLimited, Rejected, Unavailable
from webapp.brokers.pacing import Pacer

log = logging.getLogger(__name__)

DEFAULT_LOGIN_URL = "https://mis.kotaksecurities.com"
DEFAULT_TRUSTED_DOMAINS = ("kotaksecurities.com",)
DEFAULT_TIMEOUT = 7.0
NEO_FIN_KEY = "neotradeapi"
BROKER = "Kotak Neo"

INVALID_SESSION = "1003"  # documented: {"stat": "Not_Ok", "emsg": "Invalid session", "stCode": 1003}
INTERNAL_ERROR = "1005"  # documented: "Internal Error → Transient issue. Retry"
AUTH_WORDS = (
    "invalid session",
    "session expired",
    "session is expired",
    "invalid token",
    "token expired",
    "login again",
)
NO_DATA = "no data"

# What a trader should understand when the outcome of a call is unknown.
OUTCOMES = {
    "place": "the order may or may not be placed",
    "modify": "the change may or may not have been applied",
    "cancel": "the order may or may not be cancelled",
    "login": "try logging in again",
}

REQUESTS_PER_SECOND = 10  # per account, across APIs (Kotak's v2 FAQ, Q24)
PACE_WINDOW = 1.05  # seconds: a little wider than Kotak's second, whose window and ours are not aligned


PACER = Pacer()  # per account in this process (other processes are not coordinated)

CALLS = http.CallLog(log, "kotak", ("token", "sid", "rid", "mpin", "totp", "mobileNumber", "Auth"))


def trusted_base_url(url: str, login_url: str, trusted_domains: Iterable[str]) -> str | None:
    """`url` without its trailing slash when the session token may be sent there, else None.

    Trusted: the login host itself (same scheme, host and port as KOTAK_API_URL: the emulator, or a
    deployment pointing both at one gateway), or an https URL on one of the trusted domains (a host
    equal to one, or under it: cis.kotaksecurities.com, e21.kotaksecurities.com). Never a URL with
    credentials, a query or a fragment.
    """
    try:
        given, login = urlsplit(str(url).strip()), urlsplit(login_url)
        given_port, login_port = given.port, login.port
    except ValueError:
        return None
    host = (given.hostname or "").lower()
    if not host or given.username or given.password or given.query or given.fragment:
        return None
    if (given.scheme, host, given_port) == (login.scheme, (login.hostname or "").lower(), login_port):
        return str(url).strip().rstrip("/")
    if given.scheme != "https":
        return None
    for domain in trusted_domains:
        domain = domain.strip().lower().lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return str(url).strip().rstrip("/")
    return None


def domains_option(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_TRUSTED_DOMAINS
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part).strip() for part in value if str(part).strip())


class KotakWire:
    """Sends one request over the process's shared pool and returns the success answer. Never retries."""

    def __init__(self, *, consumer_key: str, client_code: str, options: Mapping[str, Any]):
        self.login_url = str(options.get("base_url") or DEFAULT_LOGIN_URL).rstrip("/")
        self.trusted_domains = domains_option(options.get("trusted_domains"))
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.consumer_key = consumer_key
        self.client_code = client_code
        # options["pace"]: False sends at once (tests of Kotak's own 429); default paces per account
        self.pace = bool(options.get("pace", True))

    def trusted(self, url: str) -> str | None:
        return trusted_base_url(url, self.login_url, self.trusted_domains)

    # ------------------------------------------------------------------ the three kinds of call

    def login(self, op: str, path: str, body: Mapping[str, Any], extra_headers: Mapping[str, str]) -> dict[str, Any]:
        """A login step: returns the answer's `data` object."""
        headers = {
            "Authorization": self.consumer_key,
            "neo-fin-key": NEO_FIN_KEY,
            "Content-Type": "application/json",
            "Accept": "application/json",
            **extra_headers,
        }
        response = self._send(op, "POST", self.login_url + path, headers, body=json.dumps(body))
        answer = self._decode(op, response)
        data = answer.get("data") if isinstance(answer, dict) else None
        if response.status < 300 and isinstance(data, dict) and str(data.get("status", "success")).lower() == "success":
            return data
        CALLS.raw(op, self.client_code, response)
        if response.status == 429:
            raise RateLimited(f"{BROKER} is rate limiting logins; wait and retry", retry_after=_retry_after(response))
        if response.status >= 500 or response.status == 424:
            raise Unavailable(f"{BROKER} login is unavailable (HTTP {response.status}); try logging in again")
        message = ""
        if isinstance(answer, dict):
            message = str(answer.get("message") or answer.get("emsg") or answer.get("errMsg") or "").strip()
            if not message and isinstance(data, dict):
                message = str(data.get("message") or "").strip()
        raise Rejected(message or f"{BROKER} refused the login (HTTP {response.status})")

    def session_call(
        self,
        op: str,
        method: str,
        url: str,
        *,
        token: str,
        sid: str,
        jdata: Mapping[str, Any] | None = None,
        read: bool = False,
    ) -> Any:
        """An order, report, portfolio, limits or margin call on the session's base URL."""
        headers = {"Auth": token, "Sid": sid, "neo-fin-key": NEO_FIN_KEY, "accept": "application/json"}
        form = {"jData": json.dumps(jdata, separators=(",", ":"))} if jdata is not None else None
        response = self._send(op, method, url, headers, form=form)
        answer = self._answer(op, response, read=read)
        if not isinstance(answer, dict):  # only quotes answer a bare list
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} sent an unreadable answer; {OUTCOMES.get(op, 'try again')}")
        return answer

    def key_call(self, op: str, url: str) -> Any:
        """Quotes and the scrip master: only the consumer key, as Authorization."""
        headers = {"Authorization": self.consumer_key, "Content-Type": "application/json"}
        response = self._send(op, "GET", url, headers)
        return self._answer(op, response, read=True)

    def fetch_file(self, op: str, url: str) -> str:
        """A scrip master file (no credentials sent)."""
        response = self._send("instruments_file", "GET", url, {"Accept": "text/csv, */*"})
        if response.status != 200:
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} scrip master file answered HTTP {response.status}; try again")
        return response.text

    # ------------------------------------------------------------------ plumbing

    def _send(
        self,
        op: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        body: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> http.Response:
        outcome = OUTCOMES.get(op, "try again")
        if self.pace and op != "instruments_file":
            PACER.wait(self.client_code, REQUESTS_PER_SECOND, PACE_WINDOW)
        return http.call(
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
            timeout=self.timeout,
        )

    def _decode(self, op: str, response: http.Response) -> Any:
        try:
            return json.loads(response.text, parse_float=Decimal)
        except ValueError:
            if response.status == 429:
                return None
            if response.status >= 500 or response.status == 200:
                CALLS.raw(op, self.client_code, response)
                raise Unavailable(
                    f"{BROKER} sent an unreadable answer (HTTP {response.status}); {OUTCOMES.get(op, 'try again')}"
                ) from None
            return None

    def _answer(self, op: str, response: http.Response, *, read: bool) -> Any:
        code = response.status
        outcome = OUTCOMES.get(op, "try again")
        if code == 429:
            raise RateLimited(
                f"{BROKER} is rate limiting this account; wait and retry", retry_after=_retry_after(response)
            )
        if code >= 500 or code == 424:
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} answered HTTP {code}; {outcome}")
        answer = self._decode(op, response)
        if isinstance(answer, list):  # quotes answer a bare list
            return answer
        if not isinstance(answer, dict):
            if code in (401, 403):
                raise AuthExpired(f"{BROKER} session is no longer valid (HTTP {code}); log in again")
            CALLS.raw(op, self.client_code, response)
            raise Unavailable(f"{BROKER} sent an unreadable answer (HTTP {code}); {outcome}")
        stat = str(answer.get("stat") or "").strip().lower()
        if code < 300 and (stat == "ok" or (not stat and "data" in answer and "emsg" not in answer)):
            return answer
        message = str(answer.get("emsg") or answer.get("errMsg") or answer.get("message") or "").strip()
        if read and code < 300 and message.lower() == NO_DATA:
            return {"stat": "Ok", "data": []}  # an empty order or trade book
        CALLS.raw(op, self.client_code, response)
        raise _error_for(answer, code, message, outcome)


def _error_for(answer: Mapping[str, Any], http_status: int, message: str, outcome: str) -> BrokerError:
    code = str(answer.get("stCode") or answer.get("errorCode") or "").strip()
    if http_status in (401, 403) or code == INVALID_SESSION or any(w in message.lower() for w in AUTH_WORDS):
        return AuthExpired(f"{BROKER} session is no longer valid ({message or code or http_status}); log in again")
    if code == INTERNAL_ERROR:
        return Unavailable(f"{BROKER} reported an internal error ({message or code}); {outcome}")
    return Rejected(message or f"{BROKER} refused the request ({code or http_status})")


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None

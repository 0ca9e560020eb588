"""A Telegram Bot API emulator over real HTTP: `POST /bot<token>/<method>` with JSON, form or query
parameters, answering the Bot API's envelopes (core.telegram.org/bots/api, "Making requests"):
{"ok": true, "result": ...} or {"ok": false, "error_code": n, "description": "...", "parameters":
{"retry_after": s}} for 429.

Methods: getMe; getUpdates (offset confirms every update below it, timeout long-polls); sendMessage
(text to a chat that has talked to the bot). A wrong token is 401 "Unauthorized". Tests make users
talk to the bot (`user_says`), script faults for the next sends (`fail_next("429", "500", "drop")`:
"drop" books the message and closes the connection unanswered) and read the ledger of sent messages.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.common import DropConnection, EmulatorServer
from webapp.jsonutil import text_json


@dataclass
class SentMessage:
    message_id: int
    chat_id: str
    text: str
    at: float


class TelegramEmulator:
    def __init__(self, token: str = "123456:TEST-token", username: str = "fanout_test_bot"):
        self.token, self.username = token, username
        self.lock = threading.Condition()
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 100_000
        self.next_message_id = 1
        self.chats: dict[str, dict[str, Any]] = {}
        self.sent: list[SentMessage] = []  # the ledger: every message the bot sent
        self.faults: deque[str] = deque()
        self.retry_after = 3
        self.calls: list[str] = []

    # ---- test helpers
    def user_says(self, chat_id: int, text: str, username: str = "trader_tg") -> int:
        """A user's message to the bot: an update for getUpdates. Returns its update_id."""
        with self.lock:
            chat = {"id": chat_id, "type": "private", "username": username, "first_name": username}
            self.chats[str(chat_id)] = chat
            self.next_update_id += 1
            message_id = self._message_id()
            update = {
                "update_id": self.next_update_id,
                "message": {
                    "message_id": message_id,
                    "from": {"id": chat_id, "is_bot": False, "first_name": username, "username": username},
                    "chat": chat,
                    "date": int(time.time()),
                    "text": text,
                },
            }
            self.updates.append(update)
            self.lock.notify_all()
            return update["update_id"]

    def fail_next(self, *faults: str) -> None:
        """The next sendMessage calls fail, in order: "429", "500" or "drop" (booked, no answer)."""
        with self.lock:
            self.faults.extend(faults)

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        with self.lock:
            return [m for m in self.sent if m.chat_id == str(chat_id)]

    # ---- the API
    def __call__(self, environ, start_response):
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path.lstrip("/")
        if not path.startswith("bot") or "/" not in path:
            return self._error(404, "Not Found")
        token, _, method = path[3:].partition("/")
        if token != self.token:
            return self._error(401, "Unauthorized")
        params = self._params(request)
        self.calls.append(method)
        view = {"getMe": self.get_me, "getUpdates": self.get_updates, "sendMessage": self.send_message}.get(method)
        if view is None:
            return self._error(404, "Not Found: method not found")
        return view(params)

    def get_me(self, params: dict) -> Response:
        return self._ok({"id": 123456, "is_bot": True, "first_name": "Fanout test", "username": self.username})

    def get_updates(self, params: dict) -> Response:
        try:
            offset = int(params.get("offset") or 0)
            timeout = min(float(params.get("timeout") or 0), 30.0)
            limit = max(1, min(int(params.get("limit") or 100), 100))
        except (TypeError, ValueError):
            return self._error(400, "Bad Request: wrong parameter value")
        deadline = time.monotonic() + timeout
        with self.lock:
            if offset:  # every update below the offset is confirmed: forgotten
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())
            return self._ok(list(self.updates[:limit]))

    def send_message(self, params: dict) -> Response:
        chat_id, text = str(params.get("chat_id") or ""), params.get("text") or ""
        if not text:
            return self._error(400, "Bad Request: message text is empty")
        with self.lock:
            if chat_id not in self.chats:
                return self._error(400, "Bad Request: chat not found")
            fault = self.faults.popleft() if self.faults else None
            if fault == "429":
                wait = self.retry_after
                return self._error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            if fault == "500":
                return self._error(500, "Internal Server Error")
            message = SentMessage(self._message_id(), chat_id, text, time.time())
            self.sent.append(message)
        if fault == "drop":
            raise DropConnection()
        return self._ok(
            {"message_id": message.message_id, "date": int(message.at), "chat": self.chats[chat_id], "text": text}
        )

    # ---- plumbing
    def _message_id(self) -> int:
        self.next_message_id += 1
        return self.next_message_id

    @staticmethod
    def _params(request: Request) -> dict:
        if request.is_json:
            body = request.get_json(silent=True)
            return body if isinstance(body, dict) else {}
        return {**request.args.to_dict(), **request.form.to_dict()}

    @staticmethod
    def _ok(result: Any) -> Response:
        return Response(text_json({"ok": True, "result": result}), content_type="application/json")

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return Response(json.dumps(body), status=code, content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.emulators.telegram --port 0 --token 123:abc`: prints {"url": ...}, serves."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123456:TEST-token")
    args = parser.parse_args(argv)
    server = EmulatorServer(TelegramEmulator(args.token), port=args.port).start()  # type: ignore[arg-type]
    print(json.dumps({"url": server.url}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

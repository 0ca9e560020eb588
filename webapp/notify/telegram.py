"""The Telegram Bot API, as this desk uses it: getMe, getUpdates (to link a chat by a one-time code),
sendMessage (plain text). Every answer is the Bot API's envelope: {"ok": true, "result": ...} or
{"ok": false, "error_code": ..., "description": ..., "parameters": {"retry_after": s}} (429)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import NotificationPrefs, User
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)
DEFAULT_API_URL = "https://api.telegram.org"
CODE_LIFETIME = timedelta(minutes=10)
TIMEOUT = (5, 10)  # connect, read (seconds)


class TelegramError(Exception):
    """A refusal or failure. `retryable`: 429, 5xx or no connection (the message was not taken);
    `ambiguous`: the request went out and no answer came back (it may have been sent)."""

    def __init__(self, message: str, *, retryable: bool = False, ambiguous: bool = False, retry_after: int = 0):
        super().__init__(message)
        self.retryable, self.ambiguous, self.retry_after = retryable, ambiguous, retry_after


@dataclass
class Bot:
    token: str
    api_url: str = DEFAULT_API_URL

    def call(self, method: str, payload: dict | None = None, read_timeout: float = TIMEOUT[1]) -> object:
        url = f"{self.api_url.rstrip('/')}/bot{self.token}/{method}"
        try:
            reply = requests.post(url, json=payload or {}, timeout=(TIMEOUT[0], read_timeout))
        except requests.ConnectTimeout:
            raise TelegramError("cannot reach Telegram (connect timeout)", retryable=True) from None
        except requests.Timeout:
            raise TelegramError("no answer from Telegram (read timeout)", ambiguous=True) from None
        except requests.ConnectionError as exc:
            if "NewConnectionError" in repr(exc) or "NameResolutionError" in repr(exc):  # never connected
                raise TelegramError("cannot reach Telegram", retryable=True) from None
            raise TelegramError("the connection to Telegram dropped mid-request", ambiguous=True) from None
        try:
            body = reply.json()
        except ValueError:
            body = {}
        if reply.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        code = body.get("error_code", reply.status_code) if isinstance(body, dict) else reply.status_code
        description = (body.get("description") if isinstance(body, dict) else None) or f"HTTP {reply.status_code}"
        retry_after = 0
        if isinstance(body, dict) and isinstance(body.get("parameters"), dict):
            retry_after = int(body["parameters"].get("retry_after") or 0)
        retryable = code == 429 or (isinstance(code, int) and code >= 500)
        raise TelegramError(f"Telegram {code}: {description}"[:250], retryable=retryable, retry_after=retry_after)

    def get_me(self) -> dict:
        return self.call("getMe")  # type: ignore[return-value]

    def get_updates(self, offset: int, timeout: int = 0) -> list[dict]:
        payload = {"offset": offset, "timeout": timeout, "allowed_updates": ["message"]}
        return self.call("getUpdates", payload, read_timeout=TIMEOUT[1] + timeout)  # type: ignore[return-value]

    def send_message(self, chat_id: str, text: str) -> dict:
        return self.call("sendMessage", {"chat_id": chat_id, "text": text[:4000]})  # type: ignore[return-value]


def bot_from_config(config) -> Bot | None:
    token = config.get("TELEGRAM_BOT_TOKEN")
    return Bot(token, config.get("TELEGRAM_API_URL") or DEFAULT_API_URL) if token else None


# --- linking a chat to a user by a one-time code -------------------------------------------------


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def new_link_code(prefs: NotificationPrefs, now: datetime | None = None) -> str:
    """A fresh code for the user to send as `/start <code>`; only its hash is stored (10 minutes)."""
    code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10))
    prefs.link_code_hash = hash_code(code)
    prefs.link_code_expires_at = (now or utcnow()) + CODE_LIFETIME
    return code


def link_by_code(code: str, chat_id: str, name: str, now: datetime | None = None) -> User | None:
    """The user whose live code this is, now linked to the chat (the code spent); None: no such code.
    One conditional UPDATE: two pollers reading the same update link it once."""
    now = now or utcnow()
    table = NotificationPrefs.__table__
    digest = hash_code(code)
    user_id = db.session.execute(
        sa.select(table.c.user_id).where(table.c.link_code_hash == digest, table.c.link_code_expires_at > now)
    ).scalar_one_or_none()
    if user_id is None:
        return None
    done = db.session.execute(
        sa.update(table)
        .where(table.c.user_id == user_id, table.c.link_code_hash == digest)
        .values(telegram_chat_id=str(chat_id), telegram_name=name[:64], link_code_hash=None, link_code_expires_at=None)
    )
    return db.session.get(User, user_id) if done.rowcount == 1 else None


def poll_links(bot: Bot, now: datetime | None = None) -> list[int]:
    """Read the bot's new messages once (getUpdates from the stored offset), link the chats that sent
    a live `/start <code>`, answer them, and keep the offset. Returns the linked users' ids."""
    from webapp.notify.collect import _advance, cursor

    row = cursor("telegram_updates")
    offset = row.position if row is not None else 0
    updates = bot.get_updates(offset)
    linked, replies = [], []
    for update in updates:
        offset = max(offset, int(update.get("update_id", 0)) + 1)
        message = update.get("message") or {}
        text = (message.get("text") or "").strip()
        chat = message.get("chat") or {}
        if not text.startswith("/start") or "id" not in chat:
            continue
        parts = text.split()
        if len(parts) != 2:
            replies.append((chat["id"], "Send /start followed by the code shown on your Fanout notification settings."))
            continue
        who = message.get("from") or {}
        user = link_by_code(parts[1], str(chat["id"]), who.get("username") or who.get("first_name") or "", now)
        if user is None:
            replies.append(
                (chat["id"], "That code is unknown or expired. Make a new one on your Fanout settings page.")
            )
            continue
        linked.append(user.id)
        replies.append((chat["id"], f"Linked to Fanout user {user.username}. Notifications you choose arrive here."))
    _advance("telegram_updates", position=offset)
    db.session.commit()  # the links and the offset first: an answer lost never links twice
    for chat_id, text in replies:
        try:
            bot.send_message(str(chat_id), text)
        except TelegramError as exc:
            log.warning("op=telegram_reply chat=%s result=failed error=%s", chat_id, exc)
    return linked

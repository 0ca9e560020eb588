"""Secrets at rest: Fernet tokens under a MultiFernet so keys can rotate.

FANOUT_ENCRYPTION_KEYS is a comma-separated list; the first key encrypts, every key decrypts.
`rotate_all()` re-encrypts stored secrets under the first key (`flask secrets rotate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultError(RuntimeError):
    pass


class Vault:
    def __init__(self, keys: Iterable[str]):
        keys = list(keys)
        if not keys:
            raise VaultError("no encryption key: set FANOUT_ENCRYPTION_KEYS")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise VaultError("FANOUT_ENCRYPTION_KEYS holds a malformed key (need url-safe base64, 32 bytes)") from None

    def encrypt(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise VaultError("a stored secret cannot be decrypted with the configured keys") from None

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def mask(value: str | None) -> str:
    """What a page may show of a secret: its last four characters at most."""
    if not value:
        return ""
    return "••••" + (value[-4:] if len(value) >= 8 else "")


def current_vault() -> Vault:
    """The app's vault, built once per process from FANOUT_ENCRYPTION_KEYS."""
    from flask import current_app

    vault = current_app.extensions.get("fanout_vault")
    if vault is None:
        vault = current_app.extensions["fanout_vault"] = Vault(current_app.config["FANOUT_ENCRYPTION_KEYS"])
    return vault

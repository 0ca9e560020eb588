"""ShareKhan's login token swap (brokers.md §3.2), with `cryptography`'s AES-GCM.

ShareKhan redirects back with `request_token` = base64url(AES-256-GCM(secret key, 16 zero-byte IV,
"<key>|<customerId>") ‖ 16-byte tag). The app proves it holds the secret key by decrypting it,
swapping the halves to "<customerId>|<key>" and encrypting again with the same key and IV. The
fixed IV is ShareKhan's design, not ours: the key only ever seals these one-time login strings.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from webapp.brokers.base import InvalidInput

ZERO_IV = bytes(16)
KEY_BYTES = 32


def decode_token(token: str) -> bytes:
    """Bytes of a base64 token in either alphabet, padded or not (ShareKhan sends both forms)."""
    text = unquote(token).strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cipher_for(secret_key: str) -> AESGCM:
    key = (secret_key or "").encode("utf-8")
    if len(key) != KEY_BYTES:
        raise InvalidInput("The ShareKhan secret key must be exactly 32 characters; check this client's credentials")
    return AESGCM(key)


def swap_request_token(request_token: str, secret_key: str, *, strip_padding: bool) -> tuple[str, str]:
    """(customer id, the token to send back) for a `request_token` from the login redirect.

    `strip_padding` follows the official SDK: the versioned login (`versionId` sent) expects
    unpadded base64url; the unversioned one expects standard base64 with padding.
    """
    cipher = cipher_for(secret_key)
    try:
        plain = cipher.decrypt(ZERO_IV, decode_token(request_token), None).decode("utf-8")
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "The ShareKhan login answer could not be decrypted with this client's secret key; "
            "check the secret key and log in again"
        ) from None
    login_key, sep, customer_id = plain.partition("|")
    if not sep or not login_key or not customer_id or "|" in customer_id:
        raise InvalidInput("The ShareKhan login answer is not in the expected 'key|customerId' form")
    sealed = cipher.encrypt(ZERO_IV, f"{customer_id}|{login_key}".encode(), None)
    if strip_padding:
        return customer_id, base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")
    return customer_id, base64.b64encode(sealed).decode("ascii")

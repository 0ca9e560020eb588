"""Passwords (argon2) and the password policy."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 10
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "1234567890", "qwertyuiop", "letmein123", "iloveyou12",
    "welcome123", "admin12345", "fanoutfanout", "trader1234", "0987654321", "1111111111", "abcdefghij",
})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str = "") -> str | None:
    """Why a password is too weak, in words a user can act on; None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 4:
        return "This password is too common or repetitive; choose another."
    if username and username.lower() in password.lower():
        return "The password must not contain the username."
    if password.isdigit() or password.isalpha():
        return "Mix letters with digits or symbols."
    return None

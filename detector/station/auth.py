"""Operator tokens: random, shown once, stored only as a SHA-256 hash.

A plain hash (no salt, no slow KDF) is enough because tokens are 256 random bits, not
passwords: there is nothing to brute-force or look up in a table.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from detector.station.db import Database

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")


@dataclass(frozen=True)
class Operator:
    id: int
    name: str


class AuthError(Exception):
    """Missing, malformed or unknown token (HTTP 401). Never says which of the three."""


#: How a revoked operator's stored token hash starts (`revoke`).
_REVOKED = "revoked:"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_operator_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"operator name: expected 1-64 letters, digits or ._@- starting with "
                         f"a letter or digit, got {name!r}")
    return name


def add_operator(db: Database, name: str) -> str:
    """Create operator ``name`` and return its new token (the only time it exists in clear)."""
    check_operator_name(name)
    token = secrets.token_urlsafe(32)
    db.add_operator(name, hash_token(token))
    return token


def new_token(db: Database, name: str) -> str:
    """Give operator ``name`` a new token (the old one stops working) and return it."""
    token = secrets.token_urlsafe(32)
    db.set_operator_token(check_operator_name(name), hash_token(token))
    return token


def revoke(db: Database, name: str) -> None:
    """Operator ``name``'s token stops working; their past decisions keep their name. The
    stored value is no SHA-256 hex digest, so no token can ever match it."""
    db.set_operator_token(check_operator_name(name), _REVOKED + secrets.token_hex(16))


def operators(db: Database) -> list[tuple[str, bool]]:
    """(name, revoked) of every operator, in the order they were added."""
    return [(name, stored.startswith(_REVOKED)) for name, stored in db.operator_tokens()]


def authenticate(db: Database, authorization: str | None) -> Operator:
    """The operator named by an ``Authorization: Bearer TOKEN`` header, or `AuthError`."""
    if not authorization:
        raise AuthError("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN_RE.fullmatch(token):
        raise AuthError("expected 'Authorization: Bearer TOKEN'")
    wanted = hash_token(token)
    found = db.operator_by_token_hash(wanted)
    # The lookup is by hash, so timing reveals nothing about the token; the constant-time
    # compare guards against a future lookup that is not an exact index match.
    if found is None or not hmac.compare_digest(found[2], wanted):
        raise AuthError("unknown token")
    return Operator(id=found[0], name=found[1])

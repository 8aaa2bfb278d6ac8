"""Shared-secret authentication of state-changing requests: one check for every server of the stack.

A client sends `Authorization: Bearer <token>`. Basic authentication with the token as the password is
accepted too, for clients that only take credentials in a URL (Go's net/http, for one, turns a URL's user
information into `Authorization: Basic`, client.go `send`)."""

from __future__ import annotations

import base64
import hmac
from enum import Enum


class Access(Enum):
    """What a request's credentials amount to against one configured token."""

    OPEN = "open"
    """No token is configured: the route is not protected."""
    GRANTED = "granted"
    DENIED = "denied"


def presented_token(authorization: str | None) -> str | None:
    """The token in an `Authorization` header (Bearer, or Basic's password), or None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
            return None
        return decoded.partition(":")[2] or None
    return None


def check_token(authorization: str | None, *accepted: str) -> Access:
    """Whether `authorization` carries one of the `accepted` tokens (empty ones are ignored); OPEN when
    none is configured. Compared in constant time."""
    tokens = [token for token in accepted if token]
    if not tokens:
        return Access.OPEN
    presented = presented_token(authorization)
    if presented is None:
        return Access.DENIED
    candidate = presented.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token.encode("utf-8"))
    return Access.GRANTED if matched else Access.DENIED


def basic_user(authorization: str | None, credentials: str) -> str | None:
    """The user an `Authorization: Basic` header names when its password is that user's in `credentials`
    (comma-separated user:password pairs), else None. Every pair is compared, in constant time."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        presented = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return None
    user = None
    for pair in credentials.split(","):
        if pair and hmac.compare_digest(presented, pair.encode("utf-8")):
            user = pair.partition(":")[0]
    return user

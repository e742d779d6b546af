"""Signed tokens as the tests' servers expect them: one HS256 secret, audience and issuer."""

import time
from typing import Any

import jwt

SECRET = "a-secret-of-the-tests-long-enough-for-every-hmac-algorithm-0123456789"
AUDIENCE, ISSUER = "grpc.chat", "tests"


def mint(
    user: str | None = "ann",
    rooms: Any = None,
    secret: str = SECRET,
    alg: str = "HS256",
    **claims: Any,
) -> str:
    """A token as the server expects it (claims set to None are left out)."""
    now = int(time.time())
    payload = {"sub": user, "exp": now + 3600, "aud": AUDIENCE, "iss": ISSUER, "rooms": rooms}
    payload.update(claims)
    present = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(present, secret, algorithm=alg)

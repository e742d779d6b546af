"""Bearer tokens: with `--token` set, a call must carry `authorization: Bearer <token>`.

The token is compared in constant time, so the time an answer takes says nothing about how much
of a guess was right.
"""

import hmac
from collections.abc import Mapping

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.contract import AUTHORIZATION


class TokenAuth:
    """Checks a call's metadata against the one token the server was given."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def check(self, metadata: Mapping[str, str | bytes] | None) -> None:
        """Returns when the call carries the token; raises UNAUTHENTICATED otherwise."""
        value = metadata.get(AUTHORIZATION) if metadata else None
        if not isinstance(value, str) or not value:
            raise GRPCError(
                Status.UNAUTHENTICATED,
                "this server needs a token: send metadata 'authorization: Bearer <token>'",
            )
        if not hmac.compare_digest(value.encode(), self._expected):
            raise GRPCError(Status.UNAUTHENTICATED, "the bearer token is not valid")

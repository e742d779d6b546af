"""Flood control: the token buckets a message takes from before it is stored.

With signed tokens a name is proved: a message takes from its user's bucket (the token's
`sub`), which the store keeps, so that every replica sharing the store shares it.

Without them a name is only claimed, and anyone may claim any: a stream that changed its `user`
each message had a new bucket each time. So a message also takes from its connection's bucket
(the web door's socket is a connection) and its client address's, kept in this process's memory:
a connection may send what `--rate-per-connection` users may, an address what
`--rate-per-address` users may over all its connections. These are taken first: a flood they
refuse costs the store nothing, and spends a named user's bucket no faster than a connection
may send.

The default name, `anonymous`, is no one's: every client that names no user posts as it, so
its bucket would be theirs together, and one nameless flooder would empty it for all the others
(the tutorial's clients among them). While connections have buckets, its messages take from
those alone; any other name still takes from its own, so that one name spread over many
connections stays one user.
"""

import time
from collections.abc import Callable
from typing import Any

from chat.contract import DEFAULT_USER
from chat.server.calls import Call
from chat.server.config import Settings
from chat.store import Store
from chat.store.buckets import TokenBuckets


class FloodControl:
    """The buckets of every message of one server: users' in the store, connections' and
    addresses' here."""

    def __init__(
        self, store: Store, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._rate, self._burst = settings.rate_limit, settings.rate_burst
        self._signed = settings.jwt
        self._per_connection = settings.rate_per_connection
        self._per_address = settings.rate_per_address
        self._connections = TokenBuckets(clock)
        self._addresses = TokenBuckets(clock)

    def __str__(self) -> str:
        """What it allows, for the startup line."""
        if not self._rate:
            return "off"
        users = f"{self._rate:g}/s, burst {self._burst} a user"
        if self._signed:
            return users
        return (
            f"{users}; a connection {_times(self._per_connection)}, "
            f"an address {_times(self._per_address)}"
        )

    async def refusal(self, call: Call[Any], user: str) -> str | None:
        """Why a message of `call` posted as `user` may not be stored now, or None once its
        tokens are taken. The connection's and the address's, once taken, stay spent when a
        later bucket refuses: they count what a client makes the server do."""
        rate, burst = self._rate, self._burst
        if not rate:
            return None
        if call.identity is None:
            connections = self._per_connection
            if connections and not self._connections.take(
                call.connection, rate * connections, burst * connections
            ):
                return _slow_down("this connection", rate * connections, burst * connections)
            addresses = self._per_address
            if addresses and not self._addresses.take(
                call.address, rate * addresses, burst * addresses
            ):
                return _slow_down(
                    f"{call.address} (all its connections)", rate * addresses, burst * addresses
                )
            if connections and user == DEFAULT_USER:
                return None
        if not await self._store.take_token(user, rate, burst):
            return _slow_down(user, rate, burst)
        return None


def _times(users: int) -> str:
    """How many users' worth a bucket holds, for the startup line."""
    return f"{users}x" if users else "unlimited"


def _slow_down(who: str, rate: float, burst: int) -> str:
    return (
        f"slow down: {who} may send {rate:g} messages a second, {burst} at once; "
        "this one was not stored"
    )

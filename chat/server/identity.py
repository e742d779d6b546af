"""Who a call is, once its signed token is verified: the user, and the rooms it may use.

A call without a signed token (no authentication, or the shared `--token`) has no identity and
may use every room, as any client could before tokens carried users.
"""

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from chat.contract import members

ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.*-]{1,64}")
"""A room pattern of a token's `rooms` claim: a room name in which `*` matches any run."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The user a token names (`sub`) and its room patterns; None: every room."""

    user: str
    rooms: tuple[str, ...] | None = None
    mods: tuple[str, ...] = ()
    """Room patterns of its `mod` claim: where its user may delete others' messages and set
    the topic."""

    def may_use(self, room: str) -> bool:
        """Whether the token lets its user read and post in `room`: a direct conversation
        only when it names the user, another room when the `rooms` claim allows it."""
        users = members(room)
        if users is not None:
            return self.user in users
        return self.rooms is None or any(fnmatchcase(room, pattern) for pattern in self.rooms)

    def moderates(self, room: str) -> bool:
        """Whether the token makes its user a moderator of `room` (never of a direct one)."""
        return not room.startswith("@") and any(fnmatchcase(room, pattern) for pattern in self.mods)

    def check_user(self, user: str, where: str) -> str | None:
        """Why `user` (from `where`) cannot be the one posting, or None when it is the token's."""
        if user == self.user:
            return None
        return f"{where} {user!r} is not you: your token is for user {self.user!r}"

    def check_room(self, room: str) -> str | None:
        """Why the user may not use `room`, or None when the token allows it."""
        if self.may_use(room):
            return None
        if room.startswith("@"):
            return f"{room} is a direct conversation of others: only they may use it"
        allowed = ", ".join(self.rooms or ()) or "none"
        return f"your token does not allow room {room!r} (it allows: {allowed})"

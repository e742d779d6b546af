"""The server's own values: a message before and after it is stored.

Plain frozen dataclasses; betterproto classes appear only at the wire boundary
(chat/server/encoding/).
"""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Draft:
    """A message accepted for storage; `origin` names the local stream that posted it (0: none)."""

    room: str
    user: str
    text: str
    origin: int = 0


@dataclass(frozen=True, slots=True)
class Stored:
    """A message the store has committed: `id` is unique and increases within every room."""

    id: int
    room: str
    user: str
    text: str
    sent_at: datetime
    origin: int = field(default=0, compare=False)

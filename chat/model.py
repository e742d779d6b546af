"""The server's own values: a message before and after it is stored.

Plain frozen dataclasses; betterproto classes appear only at the wire boundary
(chat/server/encoding/).
"""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Draft:
    """A message accepted for storage; `origin` names the local stream that posted it (0: none),
    `key` the poster's name for it ('': none), which makes a repeat of it stored once."""

    room: str
    user: str
    text: str
    origin: int = 0
    key: str = ""


@dataclass(frozen=True, slots=True)
class Stored:
    """A message the store has committed: `id` is unique and increases within every room.

    `key` is the poster's key, for its ACK; `repeat` says the draft's key had been stored
    already, under this id and time, so nothing was stored or told to listeners this time.
    """

    id: int
    room: str
    user: str
    text: str
    sent_at: datetime
    origin: int = field(default=0, compare=False)
    key: str = field(default="", compare=False)
    repeat: bool = field(default=False, compare=False)

"""What a typed line means in the interactive chat: a message, or an IRC-style /command.

Nothing here talks to the server; chat/client/terminal.py carries a command out.
"""

from dataclasses import dataclass
from typing import Literal

Action = Literal["say", "me", "who", "join", "rooms", "help", "quit", "unknown", "usage"]

HELP = [
    "/who            who is online in this room",
    "/join ROOM      leave this room for ROOM (its last messages first)",
    "/rooms          the rooms with recent messages",
    "/me ACTION      say what you do: * ann waves",
    "/help           this list",
    "/quit           leave (Ctrl-D and Ctrl-C leave too)",
    "any other line is sent to the room; start it with // to send a line beginning with /",
]
ACTION_PREFIX = "/me "
"""How an action travels: as the text `/me waves`, which any client shows readably."""


@dataclass(frozen=True, slots=True)
class Typed:
    """A typed line: what to do, and its argument (the text, the room, or what went wrong)."""

    action: Action
    argument: str = ""


def read(line: str) -> Typed:
    """The meaning of a line as typed; empty lines are `say` with no text."""
    text = line.strip()
    if text.startswith("//"):
        return Typed("say", text[1:])
    if not text.startswith("/"):
        return Typed("say", text)
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    match word.lower():
        case "/me":
            return Typed("me", rest) if rest else Typed("usage", "/me needs an ACTION: /me waves")
        case "/join" | "/j":
            return Typed("join", rest) if rest else Typed("usage", "/join needs a ROOM: /join dev")
        case "/who" | "/names":
            return Typed("who")
        case "/rooms" | "/list":
            return Typed("rooms")
        case "/help" | "/?":
            return Typed("help")
        case "/quit" | "/exit" | "/q":
            return Typed("quit")
    return Typed("unknown", word)


def action_text(text: str) -> str | None:
    """The action of a `/me` message (`waves`), or None for an ordinary message."""
    return text.removeprefix(ACTION_PREFIX) if text.startswith(ACTION_PREFIX) else None

"""What a typed line means in the interactive chat: a message, an IRC-style /command, or a
`s/old/new/` correction of your last message.

Nothing here talks to the server; chat/client/terminal.py carries a command out.
"""

import re
from dataclasses import dataclass
from typing import Literal

Action = Literal[
    "say",
    "me",
    "msg",
    "reply",
    "edit",
    "fix",
    "delete",
    "react",
    "unreact",
    "topic",
    "more",
    "who",
    "join",
    "rooms",
    "help",
    "quit",
    "unknown",
    "usage",
]

HELP = [
    "/who              who is online in this room",
    "/join ROOM        leave this room for ROOM (its last messages first)",
    "/rooms            the rooms and their topics, then your direct conversations",
    "/msg USER [TEXT]  enter your direct conversation with USER (and say TEXT there)",
    "/reply N TEXT     answer message #N",
    "/edit N TEXT      change the text of your message #N",
    "s/OLD/NEW/        change OLD to NEW in your last message",
    "/delete N         take back your message #N",
    "/react N EMOJI    react to #N with EMOJI; again to take it back (or /unreact N EMOJI)",
    "/topic [TEXT]     set the room's topic (without TEXT: show it)",
    "/more             older messages of this room (PageUp too)",
    "/me ACTION        say what you do: * ann waves",
    "/help             this list",
    "/quit             leave (Ctrl-D and Ctrl-C leave too)",
    "any other line is sent to the room; start it with // to send a line beginning with /",
]
ACTION_PREFIX = "/me "
"""How an action travels: as the text `/me waves`, which any client shows readably."""
FIX = re.compile(r"s/([^/]+)/([^/]*)/?")
"""`s/old/new/`, as IRC users correct their last line (the last slash may be left out)."""
NUMBER = re.compile(r"#?([1-9][0-9]{0,8})")
"""How a message's short number may be typed: `3` or `#3`."""
ON_MESSAGE: dict[str, Action] = {
    "/reply": "reply",
    "/edit": "edit",
    "/delete": "delete",
    "/react": "react",
    "/unreact": "unreact",
}
"""The commands on message #N."""
USAGE = {
    "reply": "/reply needs a message number and TEXT: /reply 3 me too",
    "edit": "/edit needs a message number and TEXT: /edit 3 the new text",
    "delete": "/delete needs a message number: /delete 3",
    "react": "/react needs a message number and an EMOJI: /react 3 👍",
    "unreact": "/unreact needs a message number and an EMOJI: /unreact 3 👍",
}


@dataclass(frozen=True, slots=True)
class Typed:
    """A typed line: what to do, and its argument (the text, a room, a user, an emoji, the
    words a correction replaces, or what went wrong); `number` names a message (#N) and `text`
    goes with it (or with a user)."""

    action: Action
    argument: str = ""
    number: int = 0
    text: str = ""


def read(line: str) -> Typed:
    """The meaning of a line as typed; empty lines are `say` with no text."""
    text = line.strip()
    if text.startswith("//"):
        return Typed("say", text[1:])
    if fix := FIX.fullmatch(text):
        return Typed("fix", fix.group(1), text=fix.group(2))
    if not text.startswith("/"):
        return Typed("say", text)
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    match word.lower():
        case "/me":
            return Typed("me", rest) if rest else Typed("usage", "/me needs an ACTION: /me waves")
        case "/msg" | "/query":
            user, _, said = rest.partition(" ")
            if not user:
                return Typed("usage", "/msg needs a USER: /msg bob hello")
            return Typed("msg", user, text=said.strip())
        case "/reply" | "/edit" | "/delete" | "/react" | "/unreact":
            return _on_message(ON_MESSAGE[word.lower()], rest)
        case "/topic":
            return Typed("topic", text=rest)
        case "/more":
            return Typed("more")
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


def _on_message(action: Action, rest: str) -> Typed:
    """A command on message #N: its number, then its text or emoji (none for /delete)."""
    number, _, said = rest.partition(" ")
    said = said.strip()
    found = NUMBER.fullmatch(number)
    if found is None or (action == "delete") != (not said):
        return Typed("usage", USAGE[action])
    if action in ("react", "unreact"):
        return Typed(action, said, int(found.group(1)))
    return Typed(action, number=int(found.group(1)), text=said)


def action_text(text: str) -> str | None:
    """The action of a `/me` message (`waves`), or None for an ordinary message."""
    return text.removeprefix(ACTION_PREFIX) if text.startswith(ACTION_PREFIX) else None

"""What a message must look like to be stored: names and text limits, with reasons a user reads."""

from chat.contract import (
    DIRECT,
    DIRECT_RULE,
    MAX_EMOJI_BYTES,
    MAX_KEY_BYTES,
    MAX_TOPIC_BYTES,
    NAME,
    NAME_RULE,
    members,
)
from chat.model import CHAT, DELETE, EDIT, REACTION, READ, TOPIC, Draft

SHOWN_CHARACTERS = 64
"""How much of a bad value an error shows: enough to recognise it, never a client's megabyte."""


def shown(value: str) -> str:
    """`value` quoted for an error message, cut short when long."""
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value)} characters)"


def name_problem(kind: str, name: str) -> str | None:
    """Why `name` cannot be a user or room name, or None when it can: a room may be a direct
    conversation too."""
    if NAME.fullmatch(name):
        return None
    if kind == "room" and name.startswith("@"):
        users = members(name)
        if DIRECT.fullmatch(name) and users == sorted(set(users or ())):
            return None
        return f"direct conversation {shown(name)} must be {DIRECT_RULE}"
    if kind == "room":
        return f"room name {shown(name)} must be {NAME_RULE}, or {DIRECT_RULE}"
    return f"{kind} name {shown(name)} must be {NAME_RULE}"


def _bytes_over(text: str, limit: int) -> int:
    """The UTF-8 size of `text` when over `limit`, 0 when within it (short texts skip the
    encoding: a character is at most 4 bytes)."""
    if len(text) * 4 <= limit:
        return 0
    size = len(text.encode())
    return size if size > limit else 0


def draft_problem(draft: Draft, max_text_bytes: int, *, names: bool = True) -> str | None:
    """The first rule the draft breaks, in words, or None when it may be stored.

    `names=False` skips the user and room names, for names already checked.
    """
    if draft.kind != CHAT:
        if problem := _action_problem(draft):
            return problem
    elif not draft.text:
        return "empty message: nothing to send"
    if draft.kind in (CHAT, EDIT) and (size := _bytes_over(draft.text, max_text_bytes)):
        return f"message is {size} bytes; the limit is {max_text_bytes} bytes of UTF-8"
    if len(draft.key) * 4 > MAX_KEY_BYTES:
        size = len(draft.key.encode())
        if size > MAX_KEY_BYTES:
            return f"key is {size} bytes; the limit is {MAX_KEY_BYTES} bytes of UTF-8"
    if not names:
        return None
    return name_problem("user", draft.user) or name_problem("room", draft.room)


def _action_problem(draft: Draft) -> str | None:
    """What is wrong with an action's own fields (whether its message allows it is the
    store's to tell)."""
    if draft.kind not in (EDIT, DELETE, REACTION, READ, TOPIC):
        return "unknown action: this server knows SAY, EDIT, DELETE, REACT, UNREACT, READ and TOPIC"
    if draft.kind == TOPIC:
        if size := _bytes_over(draft.text, MAX_TOPIC_BYTES):
            return f"topic is {size} bytes; the limit is {MAX_TOPIC_BYTES} bytes of UTF-8"
        return None
    if not draft.target_id:
        return "an edit, delete, reaction or read needs target_id: the message it is on"
    if draft.kind == REACTION:
        emoji = draft.text
        if not emoji or len(emoji.encode()) > MAX_EMOJI_BYTES or any(c.isspace() for c in emoji):
            return (
                f"reaction {shown(emoji)} must be 1-{MAX_EMOJI_BYTES} bytes of UTF-8 "
                "with no whitespace"
            )
    elif draft.kind in (DELETE, READ):
        return None
    elif not draft.text:
        return "empty message: an edit needs the new text"
    return None

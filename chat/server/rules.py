"""What a message must look like to be stored: names and text limits, with reasons a user reads."""

from chat.contract import MAX_KEY_BYTES, NAME, NAME_RULE
from chat.model import Draft

SHOWN_CHARACTERS = 64
"""How much of a bad value an error shows: enough to recognise it, never a client's megabyte."""


def shown(value: str) -> str:
    """`value` quoted for an error message, cut short when long."""
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value)} characters)"


def name_problem(kind: str, name: str) -> str | None:
    """Why `name` cannot be a user or room name, or None when it can."""
    if NAME.fullmatch(name):
        return None
    return f"{kind} name {shown(name)} must be {NAME_RULE}"


def draft_problem(draft: Draft, max_text_bytes: int, *, names: bool = True) -> str | None:
    """The first rule the draft breaks, in words, or None when it may be stored.

    `names=False` skips the user and room names, for names already checked.
    """
    if not draft.text:
        return "empty message: nothing to send"
    # A character is at most 4 bytes of UTF-8: short texts skip the encoding.
    if len(draft.text) * 4 > max_text_bytes:
        size = len(draft.text.encode())
        if size > max_text_bytes:
            return f"message is {size} bytes; the limit is {max_text_bytes} bytes of UTF-8"
    if len(draft.key) * 4 > MAX_KEY_BYTES:
        size = len(draft.key.encode())
        if size > MAX_KEY_BYTES:
            return f"key is {size} bytes; the limit is {MAX_KEY_BYTES} bytes of UTF-8"
    if not names:
        return None
    return name_problem("user", draft.user) or name_problem("room", draft.room)

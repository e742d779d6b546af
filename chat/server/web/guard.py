"""What one client may cost the web door, and what is refused past it.

The door shares the server's `Guard` with the gRPC port: its refusals are counted by reason
(`chat_web_refusals_total`) and logged once per peer and reason a minute, in the
`chat.server.web` logger.
"""

import logging
from typing import Any

from aiohttp import web
from aiohttp.http import HttpProcessingError

from chat.server.http2.guard import Refusal
from chat.server.refusals import Refusals
from chat.server.rules import SHOWN_CHARACTERS

CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError)
"""What aiohttp raises for a request it cannot read: a bad request line, headers past its
limits, a chunk that does not parse, a body that its Content-Encoding does not decode."""


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """The log aiohttp's connections write to (its `logger`), where a request it could not read
    is the client's fault, not the server's: one WARNING per address a minute, counted as
    `bad_request`, never a traceback. Anything else is logged as aiohttp says."""

    def __init__(self, refusals: Refusals[Refusal]) -> None:
        super().__init__(logging.getLogger("chat.server.web"), {})
        self._refusals = refusals

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if not isinstance(error, CLIENT_FAULTS):
            super().log(level, msg, *args, **kwargs)
        elif args:  # aiohttp 3.14: "Error handling request from %s", answered 400
            detail = f"bad request, answered 400: {said(error)}"
            self._refusals.refuse(Refusal.BAD_REQUEST, str(args[0]), detail)
        # Without a peer, a body failed again as aiohttp drained it after its call ended; the
        # call's own line (INVALID_ARGUMENT) has said so already.


def said(error: BaseException) -> str:
    """What an error of aiohttp's says, on one line of ASCII, cut short."""
    cause = error.__cause__ if isinstance(error, web.RequestPayloadError) else error
    text = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
    line = " ".join(str(text).encode("ascii", "backslashreplace").decode().split())
    return line if len(line) <= SHOWN_CHARACTERS else line[:SHOWN_CHARACTERS] + "..."

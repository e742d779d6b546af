"""How the server's log lines look: text for people, or one JSON object per line for machines.

Every call ends in one line (chat/server/calls.py); its figures travel on the record as `call`,
so the JSON form carries them as fields instead of a sentence to be parsed.
"""

import json
import logging
from datetime import UTC, datetime

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CALL_LINE = (
    "%(peer)s %(method)s %(status)s %(duration_ms).1fms in=%(messages_in)d out=%(messages_out)d"
)
"""The text of a call's line; its arguments are the call's fields, by name."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, and a call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = getattr(record, "call", None)
        if isinstance(call, dict):
            entry.update(call)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, format: str) -> None:
    """Sends the server's log to stderr at `level` in `format` ("text" or "json")."""
    # Neither format shows the source line, thread or process of a record; not looking them
    # up takes about a third off every call's line (the logging HOWTO, "Optimization").
    logging._srcfile = None  # noqa: SLF001 (the HOWTO names this attribute for it)
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler])

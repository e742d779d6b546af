"""Where the project is, and the server's two paths as tests, bench, soak and abuse choose them."""

from pathlib import Path

from chat.server.encoding import Choice as EncodingChoice
from chat.server.http2 import Choice as Http2Choice

ROOT = Path(__file__).resolve().parent.parent
"""The project's folder: processes start here."""

PATHS: dict[str, tuple[EncodingChoice, Http2Choice]] = {
    "reference": ("betterproto", "grpclib"),
    "fast": ("handwritten", "direct"),
}
"""The server's two paths: the encoding and the HTTP/2 transport each runs."""


def path_flags(path: str) -> tuple[str, ...]:
    """The server flags that choose a path of PATHS."""
    encoding, http2 = PATHS[path]
    return ("--encoding", encoding, "--http2", http2)

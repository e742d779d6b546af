"""Which pages may call the web door: its own, and the origins `--web-origins` names.

A browser asks before a cross-origin gRPC-Web POST (a CORS preflight) and shows the reply only
with the headers that allow it. A WebSocket has no preflight, so its Origin is checked here too:
a page from elsewhere cannot chat in a visitor's name.
"""

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

from chat.errors import ConfigError
from chat.server.rules import shown

EXPOSED = "grpc-status, grpc-message, chat-epoch"
"""Response headers a cross-origin page may read."""
PREFLIGHT_MAX_AGE = "7200"
"""Seconds a browser may reuse a preflight's answer."""


def parse_origins(text: str) -> frozenset[str]:
    """`--web-origins`: comma-separated `scheme://host[:port]`, or `*` for any; ConfigError
    for anything else."""
    origins = frozenset(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins - {"*"}:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(f"{origin!r} is not scheme://host[:port] or *")
    return origins


class Origins:
    """The origins allowed besides the page's own."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(allowed)

    def headers(self, request: web.Request) -> Mapping[str, str] | None:
        """The CORS headers of an answer to `request` (none for a same-origin or non-browser
        caller), or None when its origin is not allowed."""
        origin = request.headers.get("Origin")
        if origin is None or origin == f"{request.scheme}://{request.host}":
            return {}
        if origin not in self._allowed and "*" not in self._allowed:
            return None
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED,
            "Vary": "Origin",
        }

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an OPTIONS preflight: 204 with what may be sent, or 403."""
        headers = self.headers(request)
        if headers is None:
            return refused(request)
        asked = request.headers.get("Access-Control-Request-Headers", "")
        return web.Response(
            status=204,
            headers={
                **headers,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": asked,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            },
        )


def refused(request: web.Request) -> web.Response:
    """403 for a page whose origin may not call, naming it (quoted: a header may hold any
    byte)."""
    origin = shown(request.headers.get("Origin", ""))
    return web.Response(status=403, text=f"origin {origin} may not call this server\n")

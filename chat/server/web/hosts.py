"""Which names the web door answers to in a request's Host header.

A page on another site can make a browser send requests to this server under that site's name
(DNS rebinding: the attacker's name, resolved again, points here), and then the browser treats
the answers as the attacker's own origin. Answering only the server's own names ends that: an
IP address, `localhost`, and the names `--web-hosts` gives; any other name gets 421 Misdirected
Request.
"""

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from chat.errors import ConfigError
from chat.server.guard.limits import Refusal
from chat.server.refusals import Refusals
from chat.server.rules import shown
from chat.server.web.base import WebPeer

ANY = "*"
"""In `--web-hosts`: every name (for a proxy in front that checks them itself)."""
LOCAL = "localhost"
"""Always answered, with its subdomains (RFC 6761: they all resolve to the machine itself)."""


def parse_hosts(text: str) -> frozenset[str]:
    """`--web-hosts`: comma-separated host names, `*.example.com` for its subdomains, or `*`
    for any; ConfigError for anything else (a scheme, a port, a path)."""
    names = frozenset(part.strip().lower().rstrip(".") for part in text.split(",") if part.strip())
    for name in names - {ANY}:
        bare = name.removeprefix("*.")
        if not bare or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-._" for c in bare):
            raise ConfigError(f"{name!r} is not a host name, *.name or *")
    return names


def machine_names() -> frozenset[str]:
    """The names of this machine: its host name and its fully qualified one."""
    return frozenset(name.lower() for name in (socket.gethostname(), socket.getfqdn()) if name)


def host_name(header: str) -> str | None:
    """The name in a Host header, lower-cased, without port, brackets or final dot; None for
    one that is not host[:port]."""
    try:
        name = urlsplit(f"//{header}").hostname
    except ValueError:  # a bracket left open, a port that is no number
        return None
    return name.rstrip(".") if name else None


class Hosts:
    """The names the door answers to; a request naming another is answered 421."""

    def __init__(self, names: Iterable[str], refusals: Refusals[Refusal]) -> None:
        self._names = frozenset(names)
        self._suffixes = tuple(name[1:] for name in self._names if name.startswith("*."))
        self._refusals = refusals

    def allows(self, name: str) -> bool:
        """Whether `name` (lower-case) is the server's: an IP address, localhost, or named."""
        if ANY in self._names or name in self._names or name == LOCAL:
            return True
        if name.endswith(("." + LOCAL, *self._suffixes)):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """421 for a request whose Host is not the server's, before anything else sees it (a
        request without one, from HTTP/1.0, names nothing a browser would trust)."""
        header = request.headers.get(hdrs.HOST)
        if header is None:
            return await handler(request)
        name = host_name(header)
        if name is not None and self.allows(name):
            return await handler(request)
        addr = WebPeer(request).addr()
        detail = (
            f"Host {shown(header)} answered 421 Misdirected Request; if the name is this "
            "server's, add it to --web-hosts (env CHAT_WEB_HOSTS)"
        )
        self._refusals.refuse(Refusal.MISDIRECTED, addr[0] if addr else "unknown", detail)
        return web.Response(
            status=421,
            text=f"this server does not answer to the name {shown(header)}\n",
        )

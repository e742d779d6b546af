"""The web door: the page and its assets, gRPC-Web and WebSockets, on one aiohttp port.

Calls from the web run the service's own handlers, wrapped by the same `Calls` (auth, limits,
the log line with the browser's address, metrics, presence), over the reference transport
that drives the web door's streams; no loopback gRPC hop.
"""

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from ssl import SSLContext

from aiohttp import hdrs, web
from grpclib.const import Handler, Status

from chat.errors import ConfigError
from chat.server.http2.grpclib_impl import GrpclibTransport
from chat.server.service import ChatService
from chat.server.web import cors, grpc_web, websocket
from chat.server.web.cors import Origins
from chat.server.web.guard import ProtocolLog, WebGuard, WebLimits
from chat.server.web.hosts import Hosts

STATIC = Path(__file__).parent / "static"
"""The built page (`just web`): index.html and its assets."""
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
"""Sent with the page and its assets: nothing but the server's own code runs in it."""
SHUTDOWN_SECONDS = 1.0
"""How long connections left after the calls drained may take to close."""


class WebDoor:
    """Routes a request to the page, or to a call of the service over gRPC-Web or a socket."""

    def __init__(
        self, service: ChatService, origins: Origins, hosts: Hosts, guard: WebGuard
    ) -> None:
        self._handlers = service.handlers(GrpclibTransport())
        self._codec = service.codec
        self._origins = origins
        self._hosts = hosts
        self._guard = guard

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard.middleware, self._hosts.middleware])
        app.router.add_get("/", self.page)
        for asset in sorted(STATIC.iterdir()):
            if asset.name != "index.html":
                app.router.add_get(f"/{asset.name}", self.asset)
        app.router.add_route("*", "/{service}/{method}", self.call)
        return app

    async def page(self, request: web.Request) -> web.FileResponse:
        return _compressed(web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS))

    async def asset(self, request: web.Request) -> web.FileResponse:
        path = STATIC / request.path.lstrip("/")
        return _compressed(web.FileResponse(path, headers=PAGE_HEADERS))

    async def call(self, request: web.Request) -> web.StreamResponse:
        """One call: POST is gRPC-Web, GET with an Upgrade a WebSocket, OPTIONS a preflight."""
        if request.method == hdrs.METH_OPTIONS:
            return self._origins.preflight(request)
        headers = self._origins.headers(request)
        if headers is None:
            return cors.refused(request)
        handler = self._handlers.get(request.path)
        if request.method == hdrs.METH_POST:
            return await self._grpc_web(request, handler, headers)
        if request.method == hdrs.METH_GET and websocket.is_upgrade(request):
            return await self._websocket(request, handler)
        return web.Response(
            status=405,
            headers={"Allow": "POST, GET, OPTIONS"},
            text="a call is a gRPC-Web POST or a WebSocket (GET with Upgrade: websocket)\n",
        )

    async def _grpc_web(
        self, request: web.Request, handler: Handler | None, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        text = grpc_web.is_text(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if text is None:
            return web.Response(
                status=415,
                text="send application/grpc-web+proto or application/grpc-web-text+proto\n",
            )
        request_type = handler.request_type if handler else bytes
        stream = grpc_web.GrpcWebStream(
            request, request_type, self._codec, text, headers, self._guard
        )
        if handler is None:
            await stream.send_trailing_metadata(
                status=Status.UNIMPLEMENTED, status_message=f"no method {request.path}"
            )
        else:
            await handler.func(stream)
        return stream.response

    async def _websocket(self, request: web.Request, handler: Handler | None) -> web.StreamResponse:
        if handler is None:
            return await websocket.refuse(
                request, Status.UNIMPLEMENTED, f"no method {request.path}"
            )
        return await websocket.serve_call(
            request, handler.func, handler.request_type, self._codec, self._guard
        )


def _compressed(response: web.FileResponse) -> web.FileResponse:
    """The file gzipped or deflated for a browser that accepts it: the script shrinks to about
    a quarter."""
    response.enable_compression()
    return response


class Serving:
    """A web door being served: its listening sockets, and aiohttp's runner of its
    connections."""

    def __init__(self, server: asyncio.Server, runner: web.AppRunner) -> None:
        self._server = server
        self._runner = runner

    async def cleanup(self) -> None:
        """Stops listening, then closes the connections (their calls have drained)."""
        self._server.close()
        await self._runner.cleanup()


async def start(
    service: ChatService,
    host: str,
    port: int,
    origins: Origins,
    ssl: SSLContext | None = None,
    hosts: Iterable[str] = (),
    limits: WebLimits | None = None,
) -> Serving:
    """Serves the web door on host:port (HTTPS with `ssl`) until `cleanup`, answering to IP
    addresses, localhost and the names of `hosts`, within `limits` (the defaults when None);
    ConfigError when the port cannot be had."""
    limits = limits or WebLimits()
    guard = WebGuard(service.limits, limits, service.reclaimer)
    runner = web.AppRunner(
        WebDoor(service, origins, Hosts(hosts, guard.refusals), guard).app(),
        handler_cancellation=True,  # a browser that goes away cancels its call, as RST_STREAM does
        access_log=None,  # every call has its own line already
        logger=ProtocolLog(guard.refusals),
        keepalive_timeout=limits.keepalive_timeout,
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    assert runner.server is not None  # set up
    loop = asyncio.get_running_loop()
    try:
        # Not aiohttp's TCPSite: every connection meets the guard before aiohttp's protocol.
        server = await loop.create_server(guard.factory(runner.server), host, port, ssl=ssl)
    except OSError as error:
        await runner.cleanup()
        raise ConfigError(
            f"cannot serve the web page on {host}:{port}: {error.strerror or error}"
        ) from None
    return Serving(server, runner)

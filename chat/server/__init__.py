"""The server: `serve` runs ChatService until SIGINT or SIGTERM, then drains; `main` is
`chat-server` (and `python -m chat.server`)."""

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from ssl import SSLContext

from chat.cli import fail_usage
from chat.errors import ConfigError, SettingError, StoreUnavailable
from chat.server import config, logs, tokens
from chat.server.app import grpc_server
from chat.server.config import Settings
from chat.server.guard.limits import FILES_KEPT
from chat.server.health import HealthChecks
from chat.server.metrics import Metrics
from chat.server.service import ChatService
from chat.server.web import app as web
from chat.server.web.cors import Origins, parse_origins
from chat.server.web.hosts import machine_names, parse_hosts
from chat.store import open_store
from chat.tls import WEB_ALPN, server_context

log = logging.getLogger("chat.server")


async def serve(settings: Settings) -> None:
    """Serves until SIGINT/SIGTERM; open streams then end with UNAVAILABLE, the store flushes."""
    ssl = server_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    store = await open_store(
        settings.store,
        max_history=settings.max_history,
        dedupe_window=settings.dedupe_window,
        presence_interval=settings.presence_interval,
        presence_timeout=settings.presence_timeout,
        max_memory_bytes=settings.max_memory_bytes,
    )
    try:
        service = ChatService(store, settings)
    except ConfigError:  # a fast path refused: nothing else has started
        await store.close()
        raise
    health = HealthChecks(store, service)
    stop_metrics: Callable[[], None] | None = None
    web_runner: web.Serving | None = None
    server = grpc_server(service, health)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if settings.metrics_port:
            stop_metrics = Metrics(service).serve(settings.host, settings.metrics_port)
            log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        await health.start()
        try:
            await server.start(settings.host, settings.port, ssl=ssl)
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigError(
                f"cannot listen on --host {settings.host} --port {settings.port}: {reason}"
            ) from None
        try:
            if settings.web_port:  # after the gRPC port: a bad --host is named for it first
                web_runner = await _start_web(service, settings)
            files = service.limits.files
            if files is not None and settings.h2_max_connections > files - FILES_KEPT:
                log.warning(
                    "--h2-max-connections %d is past what the file limit of %d allows: "
                    "connections past %d are refused",
                    settings.h2_max_connections,
                    files,
                    files - FILES_KEPT,
                )
            log.info(
                "listening on %s:%d%s, store %s; %s; %s",
                settings.host,
                settings.port,
                " with TLS" if ssl else "",
                settings.store,
                service.paths,
                service.access,
            )
            if web_runner is not None:
                scheme = "https" if ssl else "http"
                where = f"{_shown(settings.host)}:{settings.web_port}"
                log.info("chat page on %s://%s/ (gRPC-Web and WebSockets too)", scheme, where)
            await stop.wait()
            log.info("stopping: %s open", _count(service.calls.open, "call"))
            health.stopping()
            service.shut_down()
            if not await service.calls.wait_idle(settings.drain_seconds):
                log.warning(
                    "%s still open after %.1fs; closing them",
                    _count(service.calls.open, "call"),
                    settings.drain_seconds,
                )
        finally:
            server.close()
            await server.wait_closed()
    finally:
        if web_runner is not None:
            await web_runner.cleanup()
        await store.close()
        if stop_metrics is not None:
            await asyncio.to_thread(stop_metrics)  # waits for the HTTP thread's poll to notice
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second signal while draining: ignored
            loop.remove_signal_handler(signum)
    log.info("stopped")


async def _start_web(service: ChatService, settings: Settings) -> web.Serving | None:
    """The web door on --web-port; None, said in one line, when the port cannot be listened on
    and was not chosen (a second server on one machine still serves gRPC); ConfigError when it
    was."""
    try:
        return await web.start(
            service,
            settings.host,
            settings.web_port,
            Origins(parse_origins(settings.web_origins)),
            ssl=_web_ssl(settings),
            hosts=parse_hosts(settings.web_hosts) or machine_names(),
            limits=settings.web_limits,
        )
    except ConfigError as error:  # the port cannot be listened on
        if "web_port" in settings.given:
            raise
        log.warning(
            "no chat page: %s; gRPC is served all the same "
            "(--web-port PORT chooses another, 0 turns the page off)",
            error,
        )
        return None


def _count(count: int, noun: str) -> str:
    """`1 call`, `2 calls`: a count in good English."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _web_ssl(settings: Settings) -> SSLContext | None:
    """The web door's TLS: the server's certificate, offering HTTP/1.1."""
    if not settings.tls_cert:
        return None
    return server_context(settings.tls_cert, settings.tls_key, alpn=WEB_ALPN)


def _shown(host: str) -> str:
    """The host in a URL a person can open: localhost for every address."""
    return "localhost" if host in ("0.0.0.0", "::", "") else host


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point `chat-server`: flags and CHAT_* variables, then serve; `chat-server
    token ...` mints a signed token instead (chat/server/tokens.py). A setting that cannot be
    right exits with code 2, a server that cannot start with code 1; each says why in one
    line."""
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == ["token"]:
        tokens.main(words[1:])
        return
    try:
        settings = config.load(words)
    except SettingError as error:
        fail_usage(config.PROG, str(error))
    logs.configure(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(settings))
    except (ConfigError, StoreUnavailable, OSError) as error:
        sys.exit(f"chat-server: {error}")

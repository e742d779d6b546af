"""Prometheus metrics of one server, served over HTTP on `--metrics-port`.

Each server has a registry of its own (tests run several in one process). Calls are counted as
they end; the live figures (messages stored, open streams, listeners cut off) are read from the
service when scraped, so chatting costs nothing extra for them.
"""

from collections.abc import Callable, Iterable

from grpclib.const import Status
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat.errors import ConfigError
from chat.server.guard.limits import WEB_ONLY, WEB_REFUSALS, Refusal
from chat.server.refusals import Refused
from chat.server.service import ChatService


class Metrics:
    """Counts the service's calls and exposes them with its live figures."""

    def __init__(self, service: ChatService) -> None:
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "chat_calls",
            "ChatService calls ended, by method and status",
            ["method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "chat_call_duration_seconds",
            "How long ChatService calls took, by method",
            ["method"],
            registry=self.registry,
        )
        self.registry.register(ServiceFigures(service))
        service.calls.on_end = self._call_ended

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Serves /metrics on a thread; returns the function that stops it."""
        try:
            httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}"
            ) from None

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()
            thread.join()

        return stop

    def _call_ended(self, method: str, status: Status, seconds: float) -> None:
        name = method.rsplit("/", 1)[-1]
        self._calls.labels(name, status.name).inc()
        self._latency.labels(name).observe(seconds)


class ServiceFigures(Collector):
    """The service's own figures, read at scrape time."""

    def __init__(self, service: ChatService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "chat_messages_stored",
            "Chat messages this server stored",
            value=self._service.messages_stored,
        )
        yield GaugeMetricFamily(
            "chat_connected_streams",
            "Open live streams: chats and following readers",
            value=self._service.connected,
        )
        refused = CounterMetricFamily(
            "chat_http2_refusals",
            "Connections, streams and requests refused by the HTTP/2 limits, by reason",
            labels=["reason"],
        )
        guard = self._service.limits
        for reason in Refusal:
            if reason not in WEB_ONLY:
                refused.add_metric([reason.value], guard.refusals.counts[reason])
        yield refused
        web_refused = CounterMetricFamily(
            "chat_web_refusals",
            "Connections and requests the web door refused past its limits, by reason",
            labels=["reason"],
        )
        for reason in WEB_REFUSALS:
            web_refused.add_metric([reason.value], guard.web_refusals.counts[reason])
        yield web_refused
        yield GaugeMetricFamily(
            "chat_http2_connections",
            "Open connections: HTTP/2 on the direct transport, which counts them, and the web "
            "door's",
            value=guard.connections,
        )
        yield GaugeMetricFamily(
            "chat_http2_buffered_bytes",
            "Request bytes received and not yet read, and of messages on their way, on all "
            "connections (direct transport)",
            value=guard.buffered + guard.reserved,
        )
        limited = CounterMetricFamily(
            "chat_refusals",
            "Requests the service refused past a limit: rooms (--max-rooms), auth_failures "
            "(--max-auth-failures)",
            labels=["reason"],
        )
        for why in Refused:
            limited.add_metric([why.value], self._service.refusals.counts[why])
        yield limited
        yield CounterMetricFamily(
            "chat_store_write_failures",
            "Store writes that failed (health is NOT_SERVING from one until a write succeeds)",
            value=self._service.writes.failures,
        )
        yield CounterMetricFamily(
            "chat_presence_updates",
            "Round trips to Redis to count streams opening, closing or entering rooms "
            "(posting a message makes none)",
            value=self._service.presence_updates,
        )
        yield CounterMetricFamily(
            "chat_slow_consumers",
            "Live streams ended for falling more than --queue-size messages behind",
            value=self._service.cut_off,
        )

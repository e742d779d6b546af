"""Settings: one dataclass built from command-line flags and `CHAT_*` environment variables."""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from chat.errors import ConfigError
from chat.server import encoding, http2, logs
from chat.server.encoding import Choice as EncodingChoice
from chat.server.http2 import Choice as Http2Choice
from chat.server.web.cors import parse_origins

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be told; each field is a flag and a `CHAT_<NAME>` variable."""

    host: str = "0.0.0.0"
    port: int = 50051
    store: str = "sqlite:///chat.db"
    queue_size: int = 1000
    max_message_bytes: int = 4 * MiB
    max_text_bytes: int = 8 * 1024
    max_history: int = 0
    drain_seconds: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    metrics_port: int = 0
    web_port: int = 8080
    web_origins: str = ""
    encoding: EncodingChoice = "auto"
    http2: Http2Choice = "auto"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def parser() -> argparse.ArgumentParser:
    """The server's flags; every default comes from the environment when set there."""
    env = os.environ.get
    d = Settings()
    p = argparse.ArgumentParser(prog="chat-server", description="The grpc.chat server.")
    p.add_argument("--host", default=env("CHAT_HOST", d.host), help="address to listen on")
    p.add_argument("--port", type=int, default=_env_int("CHAT_PORT", d.port), help="TCP port")
    p.add_argument(
        "--store",
        default=env("CHAT_STORE", d.store),
        help="sqlite:///path/chat.db (default sqlite:///chat.db), memory://, redis://host:port/db",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=_env_int("CHAT_QUEUE_SIZE", d.queue_size),
        help="messages a live listener may fall behind before it is cut off",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=_env_int("CHAT_MAX_MESSAGE_BYTES", d.max_message_bytes),
        help="largest gRPC message accepted (bytes)",
    )
    p.add_argument(
        "--max-text-bytes",
        type=int,
        default=_env_int("CHAT_MAX_TEXT_BYTES", d.max_text_bytes),
        help="longest chat text accepted (UTF-8 bytes)",
    )
    p.add_argument(
        "--max-history",
        type=int,
        default=_env_int("CHAT_MAX_HISTORY", d.max_history),
        help="messages kept per room (0: all)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=float(env("CHAT_DRAIN_SECONDS", str(d.drain_seconds))),
        help="how long a stopping server waits for open calls to end",
    )
    p.add_argument(
        "--log-level",
        default=env("CHAT_LOG_LEVEL", d.log_level),
        help=f"one of {', '.join(logs.LEVELS)}",
    )
    p.add_argument(
        "--log-format",
        default=env("CHAT_LOG_FORMAT", d.log_format),
        help="text (default), or json: one JSON object per line",
    )
    p.add_argument(
        "--token",
        default=env("CHAT_TOKEN", d.token),
        help="require 'authorization: Bearer TOKEN' on chat calls; health and reflection stay open "
        "(prefer CHAT_TOKEN: flags show in ps)",
    )
    p.add_argument(
        "--tls-cert",
        default=env("CHAT_TLS_CERT", d.tls_cert),
        metavar="FILE",
        help="serve TLS with this certificate chain (PEM); needs --tls-key",
    )
    p.add_argument(
        "--tls-key",
        default=env("CHAT_TLS_KEY", d.tls_key),
        metavar="FILE",
        help="the private key of --tls-cert (PEM)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env_int("CHAT_METRICS_PORT", d.metrics_port),
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: off)",
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=_env_int("CHAT_WEB_PORT", d.web_port),
        metavar="PORT",
        help="serve the chat page, gRPC-Web and WebSockets on http://HOST:PORT/ (0: off)",
    )
    p.add_argument(
        "--web-origins",
        default=env("CHAT_WEB_ORIGINS", d.web_origins),
        metavar="ORIGINS",
        help="other pages that may call the web port: comma-separated scheme://host[:port], "
        "or * for any (CORS)",
    )
    p.add_argument(
        "--encoding",
        choices=encoding.CHOICES,
        default=env("CHAT_ENCODING", d.encoding),
        help="protobuf bytes: betterproto (the reference), handwritten (fast), or auto: "
        "handwritten where its gate passes (env CHAT_ENCODING)",
    )
    p.add_argument(
        "--http2",
        choices=http2.CHOICES,
        default=env("CHAT_HTTP2", d.http2),
        help="frames on the connection: grpclib (the reference), direct (fast), or auto: "
        "direct where its gate passes (env CHAT_HTTP2)",
    )
    return p


def load(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags over environment over defaults; raises ConfigError on nonsense."""
    args = parser().parse_args(argv)
    settings = Settings(**vars(args))
    for name in ("queue_size", "max_message_bytes", "max_text_bytes"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if settings.log_level.upper() not in logs.LEVELS:
        levels = ", ".join(logs.LEVELS)
        raise ConfigError(f"--log-level {settings.log_level!r} is not one of {levels}")
    if settings.log_format not in logs.FORMATS:
        raise ConfigError(f"--log-format {settings.log_format!r} is not text or json")
    if not 0 <= settings.metrics_port <= 65535:
        raise ConfigError("--metrics-port must be a TCP port, or 0 for no metrics")
    if not 0 <= settings.web_port <= 65535:
        raise ConfigError("--web-port must be a TCP port, or 0 for no web page")
    parse_origins(settings.web_origins)
    if settings.encoding not in encoding.CHOICES:
        raise ConfigError(f"CHAT_ENCODING {settings.encoding!r} is not one of {encoding.CHOICES}")
    if settings.http2 not in http2.CHOICES:
        raise ConfigError(f"CHAT_HTTP2 {settings.http2!r} is not one of {http2.CHOICES}")
    if settings.max_history < 0:
        raise ConfigError("--max-history must be 0 (keep all) or more")
    return settings

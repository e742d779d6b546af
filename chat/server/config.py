"""Settings: one dataclass built from command-line flags and `CHAT_*` environment variables."""

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from chat.cli import Parser
from chat.errors import ConfigError
from chat.server import encoding, http2, logs
from chat.server.encoding import Choice as EncodingChoice
from chat.server.guard.limits import Limits
from chat.server.http2 import Choice as Http2Choice
from chat.server.web.cors import parse_origins
from chat.server.web.guard import WebLimits
from chat.server.web.hosts import parse_hosts
from chat.store import DEDUPE_WINDOW, PRESENCE_INTERVAL, PRESENCE_TIMEOUT

KiB = 1024
MiB = 1024 * KiB
LIMITS = Limits()
DEFAULT_WEB_PORT = 8080
WEB_LIMITS = WebLimits()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be told; each field is a flag and a `CHAT_<NAME>` variable."""

    host: str = "0.0.0.0"
    port: int = 50051
    store: str = "sqlite:///chat.db"
    queue_size: int = 1000
    max_message_bytes: int = 64 * KiB
    max_text_bytes: int = 8 * 1024
    max_history: int = 0
    dedupe_window: float = DEDUPE_WINDOW
    presence_interval: float = PRESENCE_INTERVAL
    presence_timeout: float = PRESENCE_TIMEOUT
    drain_seconds: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    metrics_port: int = 0
    web_port: int = DEFAULT_WEB_PORT
    web_port_chosen: bool = field(default=False, metadata={"flag": False})
    """Whether --web-port (or CHAT_WEB_PORT) was given: a chosen port that is taken stops the
    server, the default one only leaves the page off."""
    web_origins: str = ""
    web_hosts: str = ""
    web_header_timeout: float = WEB_LIMITS.header_timeout
    web_keepalive_timeout: float = WEB_LIMITS.keepalive_timeout
    web_body_timeout: float = WEB_LIMITS.body_timeout
    web_ws_heartbeat: float = WEB_LIMITS.ws_heartbeat
    web_ws_ping_timeout: float = WEB_LIMITS.ws_ping_timeout
    encoding: EncodingChoice = "auto"
    http2: Http2Choice = "auto"
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_algorithms: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    rate_limit: float = 10.0
    rate_burst: int = 20
    rate_per_connection: int = 1
    rate_per_address: int = 5
    max_rooms: int = 10_000
    edit_window: float = 0.0
    max_memory_bytes: int = 64 * MiB
    max_auth_failures: int = 20
    auth_failure_window: float = 60.0
    h2_max_connections: int = LIMITS.max_connections
    h2_max_connections_per_address: int = LIMITS.max_connections_per_address
    h2_max_streams: int = LIMITS.max_streams
    h2_frame_window: float = LIMITS.frame_window
    h2_max_resets: int = LIMITS.max_resets
    h2_max_pings: int = LIMITS.max_pings
    h2_max_settings: int = LIMITS.max_settings
    h2_max_empty_frames: int = LIMITS.max_empty_frames
    h2_handshake_timeout: float = LIMITS.handshake_timeout
    h2_header_timeout: float = LIMITS.header_timeout
    h2_idle_timeout: float = LIMITS.idle_timeout
    h2_keepalive_seconds: float = LIMITS.keepalive_seconds
    h2_keepalive_timeout: float = LIMITS.keepalive_timeout
    h2_body_timeout: float = LIMITS.body_timeout
    h2_connection_window: int = LIMITS.connection_window
    h2_stream_window: int = LIMITS.stream_window
    h2_max_buffered_bytes: int = LIMITS.max_buffered_bytes

    @property
    def limits(self) -> Limits:
        """The HTTP/2 limits: the `h2_*` settings."""
        return Limits(
            **{name: getattr(self, f"h2_{name}") for name, _, _ in H2_FLAGS},
            log_interval=LIMITS.log_interval,
        )

    @property
    def web_limits(self) -> WebLimits:
        """The web door's clocks: the `web_*` settings of WEB_FLAGS."""
        return WebLimits(**{name: getattr(self, f"web_{name}") for name, _ in WEB_FLAGS})

    @property
    def jwt(self) -> bool:
        """Whether calls are authenticated with signed tokens (JWT)."""
        return bool(self.jwt_secret or self.jwt_public_key)


H2_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("max_connections", int, "connections open at once, from all clients, web door's included"),
    (
        "max_connections_per_address",
        int,
        "connections open at once from one client address, web door's included",
    ),
    ("max_streams", int, "streams open at once on a connection; the next gets REFUSED_STREAM"),
    ("frame_window", float, "seconds over which the frame budgets below are counted"),
    ("max_resets", int, "RST_STREAM frames a connection may send per --h2-frame-window"),
    ("max_pings", int, "PING frames a connection may send per --h2-frame-window"),
    ("max_settings", int, "SETTINGS frames a connection may send per --h2-frame-window"),
    (
        "max_empty_frames",
        int,
        "empty DATA and PRIORITY frames a connection may send per --h2-frame-window",
    ),
    ("handshake_timeout", float, "seconds a new connection has to send its preface and SETTINGS"),
    ("header_timeout", float, "seconds a frame (a header block above all) may stay half-sent"),
    ("idle_timeout", float, "seconds a connection with no open stream may stay silent"),
    ("keepalive_seconds", float, "seconds of silence on a busy connection before a PING"),
    ("keepalive_timeout", float, "seconds a PING has for its answer before the peer is dead"),
    ("body_timeout", float, "seconds a request message has to arrive whole after its prefix"),
    ("connection_window", int, "request bytes a connection may send ahead of the server (bytes)"),
    ("stream_window", int, "request bytes a stream may send ahead of the server (bytes)"),
    ("max_buffered_bytes", int, "unread request bytes on all connections (bytes)"),
)
"""The HTTP/2 limits (chat/server/guard/limits.py, `Limits`), each a `--h2-*` flag: name, type,
help. Over a frame budget a connection gets GOAWAY ENHANCE_YOUR_CALM; past a clock it is
closed; every refusal is counted and logged once per peer per minute."""

WEB_FLAGS: tuple[tuple[str, str], ...] = (
    ("header_timeout", "seconds a request's head may take from its first byte (slowloris)"),
    ("keepalive_timeout", "seconds a connection may sit idle between requests"),
    (
        "body_timeout",
        "seconds a gRPC-Web body may send nothing while a message or its Content-Length is "
        "part-sent; then DEADLINE_EXCEEDED",
    ),
    ("ws_heartbeat", "seconds a WebSocket may send no whole frame before it is pinged"),
    ("ws_ping_timeout", "seconds a ping has for its answer before the socket is closed"),
)
"""The web door's clocks (chat/server/web/guard.py, `WebLimits`), each a `--web-*` flag of
seconds: name, help. Its connections count against the `--h2-max-connections*` limits."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


STORE_HELP = (
    "where messages are kept: sqlite:///PATH (PATH relative to the working directory: "
    "sqlite:///chat.db), sqlite:////PATH (four slashes: an absolute path, "
    "sqlite:////var/lib/chat/chat.db), memory:// (gone when the server stops), or "
    "redis://HOST:PORT/DB or redis+cluster://HOST:PORT (any node of a Redis Cluster; both "
    "shared by replicas)"
)


def _shown(help_text: str, name: str, default: str = "%(default)s") -> str:
    """A flag's help with its default (from the environment when set there, or as `default`
    says) and its variable."""
    return f"{help_text} (default: {default}; env CHAT_{name.upper()})"


def parser() -> Parser:
    """The server's flags; every default comes from the environment when set there."""
    env = os.environ.get
    d = Settings()
    p = Parser(
        prog="chat-server",
        description="The grpc.chat server. Each flag can also be set by its CHAT_* variable; "
        "a flag given wins over the variable. `chat-server token --user NAME` prints a signed "
        "token for a user instead (see `chat-server token --help`).",
    )
    p.add_argument(
        "--host", default=env("CHAT_HOST", d.host), help=_shown("address to listen on", "host")
    )
    p.add_argument(
        "--port", type=int, default=_env_int("CHAT_PORT", d.port), help=_shown("TCP port", "port")
    )
    p.add_argument(
        "--store",
        default=env("CHAT_STORE", d.store),
        metavar="URL",
        help=_shown(STORE_HELP, "store"),
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=_env_int("CHAT_QUEUE_SIZE", d.queue_size),
        metavar="N",
        help=_shown("messages a live listener may fall behind before it is cut off", "queue_size"),
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=_env_int("CHAT_MAX_MESSAGE_BYTES", d.max_message_bytes),
        metavar="N",
        help=_shown("largest gRPC message accepted (bytes)", "max_message_bytes"),
    )
    p.add_argument(
        "--max-text-bytes",
        type=int,
        default=_env_int("CHAT_MAX_TEXT_BYTES", d.max_text_bytes),
        metavar="N",
        help=_shown("longest chat text accepted (UTF-8 bytes)", "max_text_bytes"),
    )
    p.add_argument(
        "--max-history",
        type=int,
        default=_env_int("CHAT_MAX_HISTORY", d.max_history),
        metavar="N",
        help=_shown("messages kept per room, 0 for all", "max_history"),
    )
    p.add_argument(
        "--dedupe-window",
        type=float,
        default=_env_float("CHAT_DEDUPE_WINDOW", d.dedupe_window),
        metavar="SECONDS",
        help=_shown(
            "seconds a message key is remembered, so a resend is stored once (86400: 24 h; "
            "memory:// remembers a key as long as it keeps its message)",
            "dedupe_window",
        ),
    )
    p.add_argument(
        "--presence-interval",
        type=float,
        default=_env_float("CHAT_PRESENCE_INTERVAL", d.presence_interval),
        metavar="SECONDS",
        help=_shown(
            "Redis: seconds between a replica's presence beats, each of which also takes away "
            "the replicas that stopped beating",
            "presence_interval",
        ),
    )
    p.add_argument(
        "--presence-timeout",
        type=float,
        default=_env_float("CHAT_PRESENCE_TIMEOUT", d.presence_timeout),
        metavar="SECONDS",
        help=_shown(
            "Redis: seconds after its last beat that a replica (killed, cut off) counts as "
            "gone and its users leave; they are gone from every list within this plus "
            "--presence-interval",
            "presence_timeout",
        ),
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=_env_float("CHAT_DRAIN_SECONDS", d.drain_seconds),
        metavar="SECONDS",
        help=_shown("how long a stopping server waits for open calls to end", "drain_seconds"),
    )
    p.add_argument(
        "--log-level",
        default=env("CHAT_LOG_LEVEL", d.log_level),
        help=_shown(f"one of {', '.join(logs.LEVELS)}", "log_level"),
    )
    p.add_argument(
        "--log-format",
        default=env("CHAT_LOG_FORMAT", d.log_format),
        help=_shown("text, or json: one JSON object per line", "log_format"),
    )
    p.add_argument(
        "--token",
        default=env("CHAT_TOKEN", d.token),
        help="require 'authorization: Bearer TOKEN' on chat calls; health and reflection stay "
        "open (default: none, no token needed; env CHAT_TOKEN, better than the flag, which ps "
        "shows)",
    )
    p.add_argument(
        "--tls-cert",
        default=env("CHAT_TLS_CERT", d.tls_cert),
        metavar="FILE",
        help="serve TLS with this certificate chain (PEM); needs --tls-key "
        "(default: none, plain TCP; env CHAT_TLS_CERT)",
    )
    p.add_argument(
        "--tls-key",
        default=env("CHAT_TLS_KEY", d.tls_key),
        metavar="FILE",
        help="the private key of --tls-cert (PEM) (default: none; env CHAT_TLS_KEY)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env_int("CHAT_METRICS_PORT", d.metrics_port),
        metavar="PORT",
        help=_shown(
            "serve Prometheus metrics on http://HOST:PORT/metrics, 0 for off", "metrics_port"
        ),
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=_env_int("CHAT_WEB_PORT", 0) if "CHAT_WEB_PORT" in os.environ else None,
        metavar="PORT",
        help=_shown(
            "serve the chat page, gRPC-Web and WebSockets on http://HOST:PORT/ (0: off); "
            "unless chosen, a port already taken leaves the page off and gRPC served",
            "web_port",
            str(d.web_port),
        ),
    )
    p.add_argument(
        "--web-origins",
        default=env("CHAT_WEB_ORIGINS", d.web_origins),
        metavar="ORIGINS",
        help=_shown(
            "other pages that may call the web port: comma-separated scheme://host[:port], "
            "or * for any (CORS)",
            "web_origins",
            "none",
        ),
    )
    p.add_argument(
        "--web-hosts",
        default=env("CHAT_WEB_HOSTS", d.web_hosts),
        metavar="NAMES",
        help=_shown(
            "the names the web port answers to besides IP addresses and localhost, "
            "comma-separated: chat.example.com, *.example.com for its subdomains, or * for any; "
            "a request naming another Host gets 421 (DNS rebinding)",
            "web_hosts",
            "this machine's host name and fully qualified name",
        ),
    )
    p.add_argument(
        "--encoding",
        choices=encoding.CHOICES,
        default=env("CHAT_ENCODING", d.encoding),
        help=_shown(
            "protobuf bytes: betterproto (the reference), handwritten (fast), or auto: "
            "handwritten where its gate passes",
            "encoding",
        ),
    )
    p.add_argument(
        "--http2",
        choices=http2.CHOICES,
        default=env("CHAT_HTTP2", d.http2),
        help=_shown(
            "frames on the connection: grpclib (the reference), direct (fast), or auto: "
            "direct where its gate passes",
            "http2",
        ),
    )
    p.add_argument(
        "--jwt-secret",
        default=env("CHAT_JWT_SECRET", d.jwt_secret),
        metavar="SECRET",
        help="require a JWT signed with this HS256 secret (32 bytes or more) on chat calls "
        "(default: none; env CHAT_JWT_SECRET, better than the flag, which ps shows)",
    )
    p.add_argument(
        "--jwt-public-key",
        default=env("CHAT_JWT_PUBLIC_KEY", d.jwt_public_key),
        metavar="FILE",
        help=_shown(
            "require a JWT signed with the private key of this public key (PEM: RSA, EC, Ed25519)",
            "jwt_public_key",
            "none",
        ),
    )
    p.add_argument(
        "--jwt-algorithms",
        default=env("CHAT_JWT_ALGORITHMS", d.jwt_algorithms),
        metavar="ALG,...",
        help=_shown(
            "the JWT algorithms accepted, comma-separated",
            "jwt_algorithms",
            "HS256 with a secret; with a public key, the one its type signs with: RS256, "
            "ES256, ES384, ES512 or EdDSA",
        ),
    )
    p.add_argument(
        "--jwt-audience",
        default=env("CHAT_JWT_AUDIENCE", d.jwt_audience),
        metavar="AUDIENCE",
        help=_shown(
            "accept only tokens whose 'aud' claim names this audience",
            "jwt_audience",
            "none",
        ),
    )
    p.add_argument(
        "--jwt-issuer",
        default=env("CHAT_JWT_ISSUER", d.jwt_issuer),
        metavar="ISSUER",
        help=_shown(
            "accept only tokens whose 'iss' claim is this issuer",
            "jwt_issuer",
            "none",
        ),
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=_env_float("CHAT_RATE_LIMIT", d.rate_limit),
        metavar="N",
        help=_shown(
            "messages per second a user may send over time (0: no limit)",
            "rate_limit",
        ),
    )
    p.add_argument(
        "--rate-burst",
        type=int,
        default=_env_int("CHAT_RATE_BURST", d.rate_burst),
        metavar="B",
        help=_shown(
            "messages a user may send at once before --rate-limit applies",
            "rate_burst",
        ),
    )
    p.add_argument(
        "--rate-per-connection",
        type=int,
        default=_env_int("CHAT_RATE_PER_CONNECTION", d.rate_per_connection),
        metavar="N",
        help=_shown(
            "without signed tokens, a connection may send N users' worth (N times "
            "--rate-limit and --rate-burst), whatever names its messages claim (0: no limit)",
            "rate_per_connection",
        ),
    )
    p.add_argument(
        "--rate-per-address",
        type=int,
        default=_env_int("CHAT_RATE_PER_ADDRESS", d.rate_per_address),
        metavar="N",
        help=_shown(
            "without signed tokens, a client address may send N users' worth over all its "
            "connections (0: no limit, as behind a proxy all clients share its address)",
            "rate_per_address",
        ),
    )
    p.add_argument(
        "--max-rooms",
        type=int,
        default=_env_int("CHAT_MAX_ROOMS", d.max_rooms),
        metavar="N",
        help=_shown(
            "rooms with messages the server keeps at most; a message for a new room past it "
            "gets an ERROR reply (0: no limit)",
            "max_rooms",
        ),
    )
    p.add_argument(
        "--edit-window",
        type=float,
        default=_env_float("CHAT_EDIT_WINDOW", d.edit_window),
        metavar="SECONDS",
        help=_shown(
            "how long after sending a message its author may edit it (0: no limit)",
            "edit_window",
        ),
    )
    p.add_argument(
        "--max-memory-bytes",
        type=int,
        default=_env_int("CHAT_MAX_MEMORY_BYTES", d.max_memory_bytes),
        metavar="N",
        help=_shown(
            "bytes of messages memory:// keeps in all, the oldest of any room dropped first "
            "(0: no limit)",
            "max_memory_bytes",
        ),
    )
    p.add_argument(
        "--max-auth-failures",
        type=int,
        default=_env_int("CHAT_MAX_AUTH_FAILURES", d.max_auth_failures),
        metavar="N",
        help=_shown(
            "failed authentications a client address may make per --auth-failure-window; "
            "past it, its failures get RESOURCE_EXHAUSTED until the window ends, while a "
            "right credential is still let in (0: no limit)",
            "max_auth_failures",
        ),
    )
    p.add_argument(
        "--auth-failure-window",
        type=float,
        default=_env_float("CHAT_AUTH_FAILURE_WINDOW", d.auth_failure_window),
        metavar="SECONDS",
        help=_shown(
            "seconds over which --max-auth-failures counts, from an address's first failure",
            "auth_failure_window",
        ),
    )
    for name, kind, help_text in H2_FLAGS:
        setting = f"h2_{name}"
        variable = f"CHAT_{setting.upper()}"
        default = getattr(d, setting)
        p.add_argument(
            f"--{setting.replace('_', '-')}",
            type=kind,
            default=_env_int(variable, default) if kind is int else _env_float(variable, default),
            metavar="N" if kind is int else "SECONDS",
            help=_shown(help_text, setting),
        )
    for name, help_text in WEB_FLAGS:
        setting = f"web_{name}"
        p.add_argument(
            f"--{setting.replace('_', '-')}",
            type=float,
            default=_env_float(f"CHAT_{setting.upper()}", getattr(d, setting)),
            metavar="SECONDS",
            help=_shown(help_text, setting),
        )
    return p


def load(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags over environment over defaults; raises ConfigError on nonsense."""
    args = parser().parse_strictly(list(sys.argv[1:] if argv is None else argv))
    chosen = args.web_port is not None
    if not chosen:
        args.web_port = DEFAULT_WEB_PORT
    settings = Settings(**vars(args), web_port_chosen=chosen)
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
    parse_hosts(settings.web_hosts)
    if settings.encoding not in encoding.CHOICES:
        raise ConfigError(f"CHAT_ENCODING {settings.encoding!r} is not one of {encoding.CHOICES}")
    if settings.http2 not in http2.CHOICES:
        raise ConfigError(f"CHAT_HTTP2 {settings.http2!r} is not one of {http2.CHOICES}")
    if not 0 <= settings.dedupe_window < math.inf:
        raise ConfigError("--dedupe-window must be a number of seconds, 0 or more")
    if not 0 < settings.presence_interval < math.inf:
        raise ConfigError("--presence-interval must be a number of seconds above 0")
    if not 2 * settings.presence_interval <= settings.presence_timeout < math.inf:
        raise ConfigError(
            "--presence-timeout must be at least twice --presence-interval, so that one late "
            "beat does not take a live replica for gone"
        )
    if not 0 <= settings.drain_seconds < math.inf:
        raise ConfigError("--drain-seconds must be a number of seconds, 0 or more")
    if not 0 <= settings.edit_window < math.inf:
        raise ConfigError("--edit-window must be a number of seconds, 0 (no limit) or more")
    if settings.max_history < 0:
        raise ConfigError("--max-history must be 0 (keep all) or more")
    _check_auth(settings)
    if settings.rate_limit < 0 or settings.rate_limit != settings.rate_limit:
        raise ConfigError("--rate-limit must be 0 (no limit) or more messages per second")
    if settings.rate_burst < 1:
        raise ConfigError("--rate-burst must be at least 1")
    names = ("rate_per_connection", "rate_per_address", "max_rooms", "max_memory_bytes")
    for name in (*names, "max_auth_failures"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be 0 (no limit) or more")
    if not 0 < settings.auth_failure_window < math.inf:
        raise ConfigError("--auth-failure-window must be a number of seconds, more than 0")
    _check_limits(settings)
    return settings


def _check_limits(settings: Settings) -> None:
    """Every HTTP/2 limit and web clock positive; the windows where HTTP/2 allows them."""
    flags = [f"h2_{name}" for name, _, _ in H2_FLAGS] + [f"web_{name}" for name, _ in WEB_FLAGS]
    for setting in flags:
        if not 0 < getattr(settings, setting) < math.inf:
            raise ConfigError(f"--{setting.replace('_', '-')} must be more than 0")
    for name in ("connection_window", "stream_window"):
        if not 65535 <= getattr(settings, f"h2_{name}") <= 2**31 - 1:
            raise ConfigError(f"--h2-{name.replace('_', '-')} must be 65535 to 2147483647 bytes")


def _check_auth(settings: Settings) -> None:
    """One way to authenticate at a time; JWT details only with a JWT key."""
    if settings.token and settings.jwt:
        raise ConfigError(
            "--token (one shared token) and --jwt-secret/--jwt-public-key (signed tokens) "
            "are two ways to authenticate: choose one"
        )
    if settings.jwt_secret and settings.jwt_public_key:
        raise ConfigError("--jwt-secret and --jwt-public-key exclude each other: choose one key")
    if not settings.jwt:
        for name in ("jwt_algorithms", "jwt_audience", "jwt_issuer"):
            if getattr(settings, name):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} needs --jwt-secret or --jwt-public-key")

"""Settings: one dataclass, each field declared once with its default, its help and the type
that checks it; the `chat-server` flags, their `CHAT_*` variables and `--help` come from it.

As uvicorn's command line does, click reads each flag and its variable (`auto_envvar_prefix`),
shows every default and variable in `--help`, and checks a value's type and range; a subsystem
checks what it alone understands (a store URL, web origins and host names). A value that cannot
be right, from a flag or the environment, is a SettingError: one line, exit code 2.
"""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from chat.cli import Number, Whole, one_line
from chat.errors import ConfigError, SettingError
from chat.server import encoding, http2, logs
from chat.server.encoding import Choice as EncodingChoice
from chat.server.guard.limits import WINDOWS, Limits
from chat.server.http2 import Choice as Http2Choice
from chat.server.web.cors import parse_origins
from chat.server.web.guard import WebLimits
from chat.server.web.hosts import parse_hosts
from chat.store import (
    DEDUPE_WINDOW,
    PRESENCE_INTERVAL,
    PRESENCE_TIMEOUT,
    presence_problem,
    url_problem,
)

T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB
LIMITS = Limits()
DEFAULT_WEB_PORT = 8080
WEB_LIMITS = WebLimits()
PROG = "chat-server"
PREFIX = "CHAT"
"""The variables' prefix: `--drain-seconds` is also `CHAT_DRAIN_SECONDS`."""
SETTING = "setting"
"""The key of a field's metadata that holds its Setting: a field without one is no flag."""

SERVING = "Serving"
MESSAGES = "Messages and flood control"
STORE = "Store (what the --store URL keeps, and how)"
AUTH = "Authentication"
WEB = "Web door (the chat page, gRPC-Web and WebSockets)"
HTTP2 = "HTTP/2 limits (what one client may cost; past a frame budget GOAWAY, past a clock closed)"

PORT = Whole(0, 65535)
COUNT = Whole(min=0)
"""A count where 0 means no limit."""
AT_LEAST_ONE = Whole(min=1)
SECONDS = Number(min=0)
POSITIVE = Number(min=0, min_open=True)


def _problem_of(parse: Callable[[str], object]) -> Callable[[str], str | None]:
    """A parser as a check: the ConfigError it raises for a value is that value's problem."""

    def check(value: str) -> str | None:
        try:
            parse(value)
        except ConfigError as error:
            return str(error)
        return None

    return check


@dataclass(frozen=True, slots=True)
class Setting:
    """How a field of Settings is given on the command line: the rest of its declaration."""

    help: str
    heading: str
    type: click.ParamType[Any] = click.STRING
    """What checks a flag's or a variable's text and turns it into the field's value."""
    metavar: str | None = None
    shown: str | None = None
    """The default as --help says it, where the value alone says nothing (an empty string)."""
    check: Callable[[str], str | None] | None = None
    """A subsystem's own check of the value: why it is wrong, or None."""


def setting(
    default: T,
    heading: str,
    help: str,
    type: click.ParamType[Any] = click.STRING,
    metavar: str | None = None,
    shown: str | None = None,
    check: Callable[[str], str | None] | None = None,
) -> T:
    """A field of Settings that is a flag and a variable, declared in this one place."""
    declared = Setting(help, heading, type, metavar, shown, check)
    return field(default=default, metadata={SETTING: declared})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be told; each field is a flag and a `CHAT_<NAME>` variable."""

    host: str = setting("0.0.0.0", SERVING, "address to listen on", metavar="ADDRESS")
    port: int = setting(50051, SERVING, "TCP port", Whole(1, 65535), "PORT")
    tls_cert: str = setting(
        "",
        SERVING,
        "serve TLS with this certificate chain (PEM); needs --tls-key",
        metavar="FILE",
        shown="none, plain TCP",
    )
    tls_key: str = setting(
        "", SERVING, "the private key of --tls-cert (PEM)", metavar="FILE", shown="none"
    )
    drain_seconds: float = setting(
        5.0,
        SERVING,
        "how long a stopping server waits for open calls to end",
        SECONDS,
        "SECONDS",
    )
    log_level: str = setting(
        "INFO", SERVING, "how much is logged", click.Choice(logs.LEVELS, case_sensitive=False)
    )
    log_format: str = setting(
        "text", SERVING, "text, or json: one JSON object per line", click.Choice(logs.FORMATS)
    )
    metrics_port: int = setting(
        0, SERVING, "serve Prometheus metrics on http://HOST:PORT/metrics, 0 for off", PORT, "PORT"
    )
    encoding: EncodingChoice = setting(
        "auto",
        SERVING,
        "protobuf bytes: betterproto (the reference), handwritten (fast), or auto: "
        "handwritten where its gate passes",
        click.Choice(encoding.CHOICES),
    )
    http2: Http2Choice = setting(
        "auto",
        SERVING,
        "frames on the connection: grpclib (the reference), direct (fast), or auto: "
        "direct where its gate passes",
        click.Choice(http2.CHOICES),
    )

    queue_size: int = setting(
        1000,
        MESSAGES,
        "messages a live listener may fall behind before it is cut off",
        AT_LEAST_ONE,
        "N",
    )
    max_message_bytes: int = setting(
        64 * KiB, MESSAGES, "largest gRPC message accepted (bytes)", AT_LEAST_ONE, "N"
    )
    max_text_bytes: int = setting(
        8 * KiB, MESSAGES, "longest chat text accepted (UTF-8 bytes)", AT_LEAST_ONE, "N"
    )
    edit_window: float = setting(
        0.0,
        MESSAGES,
        "how long after sending a message its author may edit it (0: no limit)",
        SECONDS,
        "SECONDS",
    )
    rate_limit: float = setting(
        10.0,
        MESSAGES,
        "messages per second a user may send over time (0: no limit)",
        Number(min=0),
        "N",
    )
    rate_burst: int = setting(
        20,
        MESSAGES,
        "messages a user may send at once before --rate-limit applies",
        AT_LEAST_ONE,
        "B",
    )
    rate_per_connection: int = setting(
        1,
        MESSAGES,
        "without signed tokens, a connection may send N users' worth (N times --rate-limit and "
        "--rate-burst), whatever names its messages claim (0: no limit)",
        COUNT,
        "N",
    )
    rate_per_address: int = setting(
        5,
        MESSAGES,
        "without signed tokens, a client address may send N users' worth over all its "
        "connections (0: no limit, as behind a proxy all clients share its address)",
        COUNT,
        "N",
    )
    max_rooms: int = setting(
        10_000,
        MESSAGES,
        "rooms with messages the server keeps at most; a message for a new room past it gets "
        "an ERROR reply (0: no limit)",
        COUNT,
        "N",
    )

    store: str = setting(
        "sqlite:///chat.db",
        STORE,
        "where messages are kept: sqlite:///PATH (PATH relative to the working directory: "
        "sqlite:///chat.db), sqlite:////PATH (four slashes: an absolute path, "
        "sqlite:////var/lib/chat/chat.db), memory:// (gone when the server stops), or "
        "redis://HOST:PORT/DB or redis+cluster://HOST:PORT (any node of a Redis Cluster; both "
        "shared by replicas)",
        metavar="URL",
        check=url_problem,
    )
    max_history: int = setting(0, STORE, "messages kept per room, 0 for all", COUNT, "N")
    dedupe_window: float = setting(
        DEDUPE_WINDOW,
        STORE,
        "seconds a message key is remembered, so a resend is stored once (86400: 24 h; "
        "memory:// remembers a key as long as it keeps its message)",
        SECONDS,
        "SECONDS",
    )
    presence_interval: float = setting(
        PRESENCE_INTERVAL,
        STORE,
        "Redis: seconds between a replica's presence beats, each of which also takes away the "
        "replicas that stopped beating",
        POSITIVE,
        "SECONDS",
    )
    presence_timeout: float = setting(
        PRESENCE_TIMEOUT,
        STORE,
        "Redis: seconds after its last beat that a replica (killed, cut off) counts as gone and "
        "its users leave, at least twice --presence-interval; they are gone from every list "
        "within this plus --presence-interval",
        POSITIVE,
        "SECONDS",
    )
    max_memory_bytes: int = setting(
        64 * MiB,
        STORE,
        "memory://: bytes of messages kept in all, the oldest of any room dropped first "
        "(0: no limit)",
        COUNT,
        "N",
    )

    token: str = setting(
        "",
        AUTH,
        "require 'authorization: Bearer TOKEN' on chat calls; health and reflection stay open "
        "(CHAT_TOKEN is better than the flag, which ps shows)",
        metavar="TOKEN",
        shown="none, no token needed",
    )
    jwt_secret: str = setting(
        "",
        AUTH,
        "require a JWT signed with this HS256 secret (32 bytes or more) on chat calls "
        "(CHAT_JWT_SECRET is better than the flag, which ps shows)",
        metavar="SECRET",
        shown="none",
    )
    jwt_public_key: str = setting(
        "",
        AUTH,
        "require a JWT signed with the private key of this public key (PEM: RSA, EC, Ed25519)",
        metavar="FILE",
        shown="none",
    )
    jwt_algorithms: str = setting(
        "",
        AUTH,
        "the JWT algorithms accepted, comma-separated",
        metavar="ALG,...",
        shown="HS256 with a secret; with a public key, the one its type signs with: RS256, "
        "ES256, ES384, ES512 or EdDSA",
    )
    jwt_audience: str = setting(
        "",
        AUTH,
        "accept only tokens whose 'aud' claim names this audience",
        metavar="AUDIENCE",
        shown="none",
    )
    jwt_issuer: str = setting(
        "",
        AUTH,
        "accept only tokens whose 'iss' claim is this issuer",
        metavar="ISSUER",
        shown="none",
    )
    max_auth_failures: int = setting(
        20,
        AUTH,
        "failed authentications a client address may make per --auth-failure-window; past it, "
        "its failures get RESOURCE_EXHAUSTED until the window ends, while a right credential is "
        "still let in (0: no limit)",
        COUNT,
        "N",
    )
    auth_failure_window: float = setting(
        60.0,
        AUTH,
        "seconds over which --max-auth-failures counts, from an address's first failure",
        POSITIVE,
        "SECONDS",
    )

    web_port: int = setting(
        DEFAULT_WEB_PORT,
        WEB,
        "serve the chat page, gRPC-Web and WebSockets on http://HOST:PORT/ (0: off); unless "
        "chosen, a port already taken leaves the page off and gRPC served",
        PORT,
        "PORT",
    )
    web_origins: str = setting(
        "",
        WEB,
        "other pages that may call the web port: comma-separated scheme://host[:port], or * for "
        "any (CORS)",
        metavar="ORIGINS",
        shown="none",
        check=_problem_of(parse_origins),
    )
    web_hosts: str = setting(
        "",
        WEB,
        "the names the web port answers to besides IP addresses and localhost, comma-separated: "
        "chat.example.com, *.example.com for its subdomains, or * for any; a request naming "
        "another Host gets 421 (DNS rebinding)",
        metavar="NAMES",
        shown="this machine's host name and fully qualified name",
        check=_problem_of(parse_hosts),
    )
    web_header_timeout: float = setting(
        WEB_LIMITS.header_timeout,
        WEB,
        "seconds a request's head may take from its first byte (slowloris)",
        POSITIVE,
        "SECONDS",
    )
    web_keepalive_timeout: float = setting(
        WEB_LIMITS.keepalive_timeout,
        WEB,
        "seconds a connection may sit idle between requests",
        POSITIVE,
        "SECONDS",
    )
    web_body_timeout: float = setting(
        WEB_LIMITS.body_timeout,
        WEB,
        "seconds a gRPC-Web body may send nothing while a message or its Content-Length is "
        "part-sent; then DEADLINE_EXCEEDED",
        POSITIVE,
        "SECONDS",
    )
    web_ws_heartbeat: float = setting(
        WEB_LIMITS.ws_heartbeat,
        WEB,
        "seconds a WebSocket may send no whole frame before it is pinged",
        POSITIVE,
        "SECONDS",
    )
    web_ws_ping_timeout: float = setting(
        WEB_LIMITS.ws_ping_timeout,
        WEB,
        "seconds a ping has for its answer before the socket is closed",
        POSITIVE,
        "SECONDS",
    )

    h2_max_connections: int = setting(
        LIMITS.max_connections,
        HTTP2,
        "connections open at once, from all clients, web door's included",
        AT_LEAST_ONE,
        "N",
    )
    h2_max_connections_per_address: int = setting(
        LIMITS.max_connections_per_address,
        HTTP2,
        "connections open at once from one client address, web door's included",
        AT_LEAST_ONE,
        "N",
    )
    h2_max_streams: int = setting(
        LIMITS.max_streams,
        HTTP2,
        "streams open at once on a connection; the next gets REFUSED_STREAM",
        AT_LEAST_ONE,
        "N",
    )
    h2_frame_window: float = setting(
        LIMITS.frame_window,
        HTTP2,
        "seconds over which the frame budgets below are counted",
        POSITIVE,
        "SECONDS",
    )
    h2_max_resets: int = setting(
        LIMITS.max_resets,
        HTTP2,
        "RST_STREAM frames a connection may send per --h2-frame-window",
        AT_LEAST_ONE,
        "N",
    )
    h2_max_pings: int = setting(
        LIMITS.max_pings,
        HTTP2,
        "PING frames a connection may send per --h2-frame-window",
        AT_LEAST_ONE,
        "N",
    )
    h2_max_settings: int = setting(
        LIMITS.max_settings,
        HTTP2,
        "SETTINGS frames a connection may send per --h2-frame-window",
        AT_LEAST_ONE,
        "N",
    )
    h2_max_empty_frames: int = setting(
        LIMITS.max_empty_frames,
        HTTP2,
        "empty DATA and PRIORITY frames a connection may send per --h2-frame-window",
        AT_LEAST_ONE,
        "N",
    )
    h2_handshake_timeout: float = setting(
        LIMITS.handshake_timeout,
        HTTP2,
        "seconds a new connection has to send its preface and SETTINGS",
        POSITIVE,
        "SECONDS",
    )
    h2_header_timeout: float = setting(
        LIMITS.header_timeout,
        HTTP2,
        "seconds a frame (a header block above all) may stay half-sent",
        POSITIVE,
        "SECONDS",
    )
    h2_idle_timeout: float = setting(
        LIMITS.idle_timeout,
        HTTP2,
        "seconds a connection with no open stream may stay silent",
        POSITIVE,
        "SECONDS",
    )
    h2_keepalive_seconds: float = setting(
        LIMITS.keepalive_seconds,
        HTTP2,
        "seconds of silence on a busy connection before a PING",
        POSITIVE,
        "SECONDS",
    )
    h2_keepalive_timeout: float = setting(
        LIMITS.keepalive_timeout,
        HTTP2,
        "seconds a PING has for its answer before the peer is dead",
        POSITIVE,
        "SECONDS",
    )
    h2_body_timeout: float = setting(
        LIMITS.body_timeout,
        HTTP2,
        "seconds a request message has to arrive whole after its prefix",
        POSITIVE,
        "SECONDS",
    )
    h2_connection_window: int = setting(
        LIMITS.connection_window,
        HTTP2,
        "request bytes a connection may send ahead of the server (bytes)",
        Whole(*WINDOWS),
        "N",
    )
    h2_stream_window: int = setting(
        LIMITS.stream_window,
        HTTP2,
        "request bytes a stream may send ahead of the server (bytes)",
        Whole(*WINDOWS),
        "N",
    )
    h2_max_buffered_bytes: int = setting(
        LIMITS.max_buffered_bytes,
        HTTP2,
        "unread request bytes on all connections (bytes)",
        AT_LEAST_ONE,
        "N",
    )

    given: frozenset[str] = frozenset()
    """The settings given by a flag or a variable rather than left at their default: a web
    port chosen and taken stops the server, the default one only leaves the page off."""

    @property
    def limits(self) -> Limits:
        """The HTTP/2 limits: the `h2_*` settings."""
        return Limits(**_prefixed(self, "h2_"), log_interval=LIMITS.log_interval)

    @property
    def web_limits(self) -> WebLimits:
        """The web door's clocks: the `web_*` settings that are WebLimits' fields."""
        clocks = {f.name for f in fields(WebLimits)}
        return WebLimits(**{k: v for k, v in _prefixed(self, "web_").items() if k in clocks})

    @property
    def jwt(self) -> bool:
        """Whether calls are authenticated with signed tokens (JWT)."""
        return bool(self.jwt_secret or self.jwt_public_key)


def _prefixed(settings: Settings, prefix: str) -> dict[str, Any]:
    """The settings whose names start with `prefix`, keyed by the rest of their names."""
    return {
        f.name.removeprefix(prefix): getattr(settings, f.name)
        for f in fields(settings)
        if f.name.startswith(prefix)
    }


class _Option(click.Option):
    """A setting's flag, listed in --help under its setting's heading."""

    def __init__(self, name: str, declared: Setting, default: object) -> None:
        super().__init__(
            ["--" + name.replace("_", "-"), name],
            type=declared.type,
            default=default,
            show_default=declared.shown or True,
            show_envvar=True,
            metavar=declared.metavar,
            help=declared.help,
            callback=_checked(declared.check) if declared.check else None,
        )
        self.heading = declared.heading


def _checked(
    check: Callable[[str], str | None],
) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback running a subsystem's check: the problem it names is click's error."""

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if problem := check(value):
            raise click.BadParameter(problem, ctx, param)
        return value

    return callback


class _Command(click.Command):
    """`chat-server`, whose --help lists the flags under their settings' headings."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            if record := param.get_help_record(ctx):
                sections.setdefault(getattr(param, "heading", "Other"), []).append(record)
        for heading, records in sections.items():
            with formatter.section(heading):
                formatter.write_dl(records)


def command() -> click.Command:
    """The `chat-server` command: a flag per setting, its variable and its help."""
    options: list[click.Parameter] = [
        _Option(f.name, f.metadata[SETTING], f.default)
        for f in fields(Settings)
        if SETTING in f.metadata
    ]
    return _Command(
        PROG,
        params=options,
        context_settings={"auto_envvar_prefix": PREFIX},
        help="The grpc.chat server. Each flag can also be set by its CHAT_* variable; a flag "
        "given wins over the variable. `chat-server token --user NAME` prints a signed token "
        "for a user instead (see `chat-server token --help`).",
    )


def load(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags over environment over defaults; SettingError, in one line, for a
    value that cannot be right. `--help` prints the help and exits."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        with command().make_context(PROG, words) as ctx:
            given = frozenset(
                name
                for name in ctx.params
                if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
            )
            settings = Settings(**ctx.params, given=given)
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
    except click.ClickException as error:
        raise SettingError(one_line(error)) from None
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Settings that cannot go together: TLS's two halves, presence's clocks, one way to
    authenticate."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingError("--tls-cert and --tls-key go together: give both or neither")
    if problem := presence_problem(settings.presence_interval, settings.presence_timeout):
        raise SettingError(f"--presence-timeout with --presence-interval: {problem}")
    if settings.token and settings.jwt:
        raise SettingError(
            "--token (one shared token) and --jwt-secret/--jwt-public-key (signed tokens) "
            "are two ways to authenticate: choose one"
        )
    if settings.jwt_secret and settings.jwt_public_key:
        raise SettingError("--jwt-secret and --jwt-public-key exclude each other: choose one key")
    if not settings.jwt:
        for name in ("jwt_algorithms", "jwt_audience", "jwt_issuer"):
            if getattr(settings, name):
                flag = "--" + name.replace("_", "-")
                raise SettingError(f"{flag} needs --jwt-secret or --jwt-public-key")

"""The `--http2` choice: grpclib's documented API, or direct frames where their gate passes.

The direct transport reads and writes private state of grpclib and h2 (see `direct_impl`), so
it runs only with the versions it was tested with, and only when every name it touches is
there. `auto` takes it when it may, and grpclib otherwise. Both put the guard in front of each
connection through one private name of grpclib's server, and serve it with a subclass of
grpclib's protocol (`GUARD_HOOKS`): without them no server starts.
"""

from typing import Any, Literal

import grpclib.protocol
import grpclib.server
import h2.connection
import h2.frame_buffer
import h2.stream
import h2.windows

from chat.errors import ConfigError
from chat.server.gate import fast_chosen, missing_names, version_problem
from chat.server.http2.base import Transport
from chat.server.http2.grpclib_impl import GrpclibTransport

Choice = Literal["auto", "grpclib", "direct"]
CHOICES: tuple[Choice, ...] = ("auto", "grpclib", "direct")

TESTED = {"grpclib": ("0.4.9", "0.4.10"), "h2": ("4.3.0", "4.5"), "hpack": ("4.1.0", "4.3")}
"""The versions the direct transport was tested with: lowest, and first one above the range."""

GUARD_HOOKS = (
    (grpclib.server.Server, ("_protocol_factory",), "grpclib.server.Server"),
    (
        grpclib.protocol.H2Protocol,
        ("handler", "config", "connection", "processor"),
        "grpclib.protocol.H2Protocol",
    ),
    (grpclib.protocol.Connection, ("feed", "flush"), "grpclib.protocol.Connection"),
    (grpclib.protocol.EventsProcessor, ("process", "close"), "grpclib.protocol.EventsProcessor"),
    (grpclib.protocol.Stream, ("id",), "grpclib.protocol.Stream"),
)
"""What both transports use of grpclib beyond its documented API to put the guard in front of a
connection and serve it (`GuardedServer`, `CheckedProtocol` in `grpclib_impl`)."""

TOUCHED = (
    (
        grpclib.server.Stream,
        (
            "_stream",
            "_recv_type",
            "_content_type",
            "_send_initial_metadata_done",
            "_send_message_done",
            "_send_trailing_metadata_done",
        ),
        "grpclib.server.Stream",
    ),
    (
        grpclib.server.Handler,
        ("_tasks", "_cancelled", "accept", "cancel", "close"),
        "grpclib.server.Handler",
    ),
    (
        grpclib.protocol.H2Protocol,
        (
            "handler",
            "config",
            "h2_config",
            "connection",
            "processor",
            "connection_made",
            "connection_lost",
        ),
        "grpclib.protocol.H2Protocol",
    ),
    (
        grpclib.protocol.EventsProcessor,
        ("streams", "process", "close"),
        "grpclib.protocol.EventsProcessor",
    ),
    (
        grpclib.protocol.Stream,
        ("_h2_connection", "_transport", "connection", "buffer", "send_data", "data_sent", "id"),
        "grpclib.protocol.Stream",
    ),
    (
        grpclib.protocol.Stream,
        (
            "wrapper",
            "init_stream",
            "window_updated",
            "headers",
            "headers_received",
            "trailers",
            "trailers_received",
            "created",
        ),
        "grpclib.protocol.Stream",
    ),
    (
        grpclib.protocol.Buffer,
        ("_ack_callback", "_eof", "_unacked", "_acked", "_acked_size", "add", "eof", "read"),
        "grpclib.protocol.Buffer",
    ),
    (
        grpclib.protocol.Connection,
        (
            "_connection",
            "write_ready",
            "data_send_process",
            "ping_count_in_sequence",
            "data_received",
            "data_sent",
            "feed",
            "flush",
            "initialize",
            "is_closing",
        ),
        "grpclib.protocol.Connection",
    ),
    (
        grpclib.protocol.Connection,
        (
            "_transport",
            "create_stream",
            "ack",
            "streams_started",
            "last_stream_created",
            "flush",
            "initialize",
        ),
        "grpclib.protocol.Connection",
    ),
    (
        h2.connection.H2Connection,
        (
            "incoming_buffer",
            "state_machine",
            "streams",
            "_inbound_flow_control_window_manager",
            "max_inbound_frame_size",
            "max_outbound_frame_size",
            "outbound_flow_control_window",
            "data_to_send",
            "_data_to_send",
            "MAX_CLOSED_STREAMS",
            "local_settings",
        ),
        "h2.connection.H2Connection",
    ),
    (
        h2.windows.WindowManager,
        ("max_window_size", "current_window_size"),
        "h2.windows.WindowManager",
    ),
    (
        h2.stream.H2Stream,
        (
            "state_machine",
            "_inbound_window_manager",
            "_expected_content_length",
            "outbound_flow_control_window",
            "stream_id",
        ),
        "h2.stream.H2Stream",
    ),
    (
        h2.frame_buffer.FrameBuffer,
        ("_data", "_preamble_len", "_headers_buffer"),
        "h2.frame_buffer.FrameBuffer",
    ),
)
"""Every private or undocumented name `direct_impl` and `streams_impl` read or write, by owner."""


def direct_unavailable() -> str | None:
    """Why direct frames cannot run here (a version, a missing attribute), or None."""
    problem = version_problem(TESTED)
    if problem:
        return problem
    for owner, names, where in TOUCHED:
        problem = missing_names(owner, names, where)
        if problem:
            return problem
    return None


def select(choice: Choice) -> tuple[Transport[Any], str]:
    """The transport for `choice`, and why, for the startup line; ConfigError when an explicit
    `direct` cannot run here, or when the guard cannot be installed on any."""
    for hook in GUARD_HOOKS:
        problem = missing_names(*hook)
        if problem:
            raise ConfigError(f"the HTTP/2 limits cannot be installed: {problem}")
    fast, reason = fast_chosen("http2", choice, "direct", direct_unavailable, TESTED)
    if not fast:
        return GrpclibTransport(), reason
    from chat.server.http2.direct_impl import DirectTransport

    return DirectTransport(), reason

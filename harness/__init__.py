"""What tests, the benchmark, the soak and the abuse suite run the server with: real processes,
in-process servers as `serve()` builds them, calls, screens. Not part of the installed package."""

from harness.calls import (
    REPLY_TIMEOUT,
    Chatter,
    RawRequests,
    grpc_web_body,
    grpc_web_reply,
    seen_online,
    serving,
)
from harness.paths import PATHS, ROOT, path_flags
from harness.processes import (
    CLUSTER_WAIT,
    RedisClusterProcesses,
    RedisProcess,
    ServerProcess,
    clean_environment,
    differences,
    free_port,
    redis_cli,
    refused_server_start,
    rss_kib,
    run_client,
    wait_accepting,
)
from harness.screens import CHROMIUM, CHROMIUM_ARGS, EXITED, SCREEN_WAIT, Screen

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CLUSTER_WAIT",
    "EXITED",
    "PATHS",
    "REPLY_TIMEOUT",
    "ROOT",
    "SCREEN_WAIT",
    "Chatter",
    "RawRequests",
    "RedisClusterProcesses",
    "RedisProcess",
    "Screen",
    "ServerProcess",
    "clean_environment",
    "differences",
    "free_port",
    "grpc_web_body",
    "grpc_web_reply",
    "path_flags",
    "redis_cli",
    "refused_server_start",
    "rss_kib",
    "run_client",
    "seen_online",
    "serving",
    "wait_accepting",
]

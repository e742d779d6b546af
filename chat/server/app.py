"""The gRPC server a chat server runs, built in one place: `serve()` starts it, and the
in-process tests start the very same object on a loopback port."""

from grpclib.server import Server

from chat.server.health import HealthChecks
from chat.server.reflection import with_reflection
from chat.server.service import ChatService


def grpc_server(service: ChatService, health: HealthChecks) -> Server:
    """The chat service, health and reflection on the service's transport (grpclib's server,
    or the direct one), held to the service's HTTP/2 limits."""
    return service.transport.server(
        with_reflection([service, health.service]),
        service.codec,
        service.limits,
        service.reclaimer,
    )

"""The standard `grpc.health.v1.Health` service (grpclib's own) for this server.

SERVING while the store answers, its writes succeed and the server runs; NOT_SERVING while the
store does not answer, from a failed write until one succeeds (chat/server/writes.py), and from
the moment the server starts stopping, so that load balancers stop sending new calls before the
open ones are drained.
"""

import logging

from grpclib.health.check import ServiceCheck, ServiceStatus
from grpclib.health.service import Health

from chat.errors import StoreUnavailable
from chat.server.service import ChatService
from chat.store import Store

CHECK_LOGGER = "grpclib.health.check"
"""The logger of grpclib's ServiceCheck (grpclib 0.4), which logs each change of a check."""
CHECK_SECONDS = 1.0
"""How long a store check's answer is reused, and how often watchers see it re-checked."""
CHECK_TIMEOUT = 5.0
"""A store that takes longer than this to answer counts as not answering."""


class HealthChecks:
    """The Health service for `service`, with the store check and the running status."""

    def __init__(self, store: Store, service: ChatService) -> None:
        self._running = ServiceStatus()
        self._running.set(True)
        self._answering = ServiceCheck(
            StoreAnswers(store), check_ttl=CHECK_SECONDS, check_timeout=CHECK_TIMEOUT
        )
        writing = ServiceStatus()
        writing.set(not service.writes.failing)
        service.writes.on_change = writing.set
        self.service = Health({service: [self._answering, self._running, writing]})

    async def start(self) -> None:
        """Checks the store once, so that the first watcher is not told NOT_SERVING for want of
        an answer (an unchecked store counts as unknown, and unknown as not serving).

        grpclib logs every change of a check, this first one from unknown included; that line
        would come before the server's "listening" line, or alone before a failure to listen.
        """
        check_log = logging.getLogger(CHECK_LOGGER)
        check_log.disabled = True
        try:
            await self._answering.__check__()
        finally:
            check_log.disabled = False

    def stopping(self) -> None:
        """NOT_SERVING from now on, for the whole server and for each service."""
        self._running.set(False)


class StoreAnswers:
    """The store check: True while `Store.check` returns, False while it raises."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self) -> bool:
        try:
            await self._store.check()
        except StoreUnavailable:
            return False
        return True

    def __repr__(self) -> str:  # grpclib logs "Health check <repr> status changed to ..."
        return "'the store answers'"

"""The server's exceptions, and the one place they become gRPC statuses."""

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.contract import STORE_DOWN


class ConfigError(Exception):
    """A setting the server cannot start with; the message says which and why."""


class SettingError(ConfigError):
    """A setting that cannot be right whatever the machine (a flag's or a variable's value, or
    two that exclude each other): a usage error, exit code 2, before anything is opened."""


class StoreUnavailable(Exception):
    """The store cannot be reached; the message says why."""


class SlowConsumer(Exception):
    """A live subscriber fell further behind than its queue allows."""

    def __init__(self, last_id: int, capacity: int) -> None:
        super().__init__(
            f"you fell more than {capacity} messages behind and were cut off; "
            f"resume with GetMessages after_id={last_id}"
        )
        self.last_id = last_id


class ShuttingDown(Exception):
    """The server is stopping and ends every open stream."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down; reconnect and resume with after_id")


def drop_tracebacks(error: BaseException) -> None:
    """Cuts `error`, and the errors it was raised from or while handling, loose from their
    tracebacks, once what they say has been used.

    A traceback holds its frames, and their locals often hold what holds the error: the task
    that stored it and re-raised it, the stream whose reader keeps it to raise again. Such a
    cycle is freed only by a full collection, which a busy or idle heap may not run for long:
    a wave of calls ended by errors stayed in memory with everything they held.
    """
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]


def to_grpc_error(error: Exception) -> GRPCError:
    """Maps one of our exceptions onto the status a client sees."""
    if isinstance(error, GRPCError):
        return error
    if isinstance(error, SlowConsumer):
        return GRPCError(Status.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, ShuttingDown):
        return GRPCError(Status.UNAVAILABLE, str(error))
    if isinstance(error, StoreUnavailable):  # the server answers: only its store does not
        return GRPCError(Status.UNAVAILABLE, f"{STORE_DOWN}: {error}")
    if isinstance(error, ConnectionError):  # a write to a client that has gone
        return GRPCError(Status.CANCELLED, "the client went away")
    return GRPCError(Status.INTERNAL, f"internal error: {type(error).__name__}")

"""Client-side help for grpclib streams that the server may end before the client has."""

from typing import Any

from grpclib.client import Stream


def raise_status(stream: Stream[Any, Any]) -> None:
    """Raises the GRPCError of a stream the server ended with a non-OK status; else returns.

    grpclib raises a status only from recv_trailing_metadata, which first wants the client's
    side ended, and that is impossible once the server has reset the stream after its trailers.
    The trailers have arrived by then, so they are read from where grpclib keeps them.
    """
    stream._maybe_raise()

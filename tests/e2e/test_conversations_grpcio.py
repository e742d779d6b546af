"""Conversations over grpcio, by field number: classes the protobuf runtime builds from the
contract's descriptors (as any language's generated code would), on a server process of each
path. Every action allowed and refused, direct conversations, and what a client that asked
for no features sees."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory

from chat.contract import GET_HISTORY, GET_MESSAGES, LIST_ROOMS, POST_MESSAGE
from chat.server.reflection import descriptors
from harness import ServerProcess

POOL = descriptors()
ACK, ERROR, EDIT, DELETE, REACTION = 1, 4, 5, 6, 7
SAY, EDIT_ACTION, DELETE_ACTION, REACT, UNREACT, TOPIC = 0, 1, 2, 3, 4, 7


def runtime(name: str) -> Any:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"grpc.chat.{name}"))


class Client:
    """grpcio calls by method path, with the runtime's classes."""

    def __init__(self, channel: grpc.Channel) -> None:
        reply, history, rooms = (runtime(n) for n in ("MessageReply", "HistoryReply", "RoomsReply"))
        self._post = channel.unary_unary(
            POST_MESSAGE, request_serializer=_bytes, response_deserializer=reply.FromString
        )
        self._history = channel.unary_unary(
            GET_HISTORY, request_serializer=_bytes, response_deserializer=history.FromString
        )
        self._rooms = channel.unary_unary(
            LIST_ROOMS, request_serializer=_bytes, response_deserializer=rooms.FromString
        )
        self._log = channel.unary_stream(
            GET_MESSAGES, request_serializer=_bytes, response_deserializer=reply.FromString
        )

    def post(self, user: str, **fields: Any) -> Any:
        request = runtime("MessageRequest")(**fields)
        return self._post(request, metadata=(("chat-user", user),), timeout=10)

    def history(self, user: str, **fields: Any) -> Any:
        request = runtime("HistoryRequest")(**fields)
        return self._history(request, metadata=(("chat-user", user),), timeout=10)

    def rooms(self, user: str) -> list[str]:
        reply = self._rooms(runtime("RoomsRequest")(), metadata=(("chat-user", user),), timeout=10)
        return [room.name for room in reply.rooms]

    def log(self, user: str, features: str = "") -> list[tuple[int, str]]:
        metadata = [("chat-user", user)] + ([("chat-features", features)] if features else [])
        request = runtime("MessagesRequest")()
        return [(r.kind, r.message) for r in self._log(request, metadata=metadata, timeout=10)]


def _bytes(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_every_action_allowed_and_refused_over_grpcio_by_field_number(
    server_process: Callable[..., ServerProcess], tmp_path: Path, store: str
) -> None:
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'chat.db'}"
    server = server_process(url)
    with grpc.insecure_channel(server.address) as channel:
        client = Client(channel)

        def ok(user: str, **fields: Any) -> int:
            reply = client.post(user, **fields)
            assert reply.kind == ACK, reply.message
            return int(reply.id)

        def refused(user: str, **fields: Any) -> str:
            reply = client.post(user, **fields)
            assert reply.kind == ERROR
            return str(reply.message)

        first = ok("ann", message="one")
        ok("ann", message="one!", action=EDIT_ACTION, target_id=first)
        assert refused("bob", message="mine", action=EDIT_ACTION, target_id=first) == (
            f"only its author may edit message {first}"
        )
        ok("bob", message="👍", action=REACT, target_id=first)
        assert client.post("bob", message="👍", action=REACT, target_id=first).id == 0
        assert refused("bob", message="a b", action=REACT, target_id=first).startswith("reaction")
        answer = ok("bob", message="agreed", reply_to=first)
        assert refused("bob", message="?", reply_to=99).startswith("no message 99")
        ok("ann", message="🎉", action=REACT, target_id=answer)
        ok("ann", message="🎉", action=UNREACT, target_id=answer)
        assert refused("bob", action=DELETE_ACTION, target_id=first).startswith("only its author")
        second = ok("ann", message="two")
        ok("ann", action=DELETE_ACTION, target_id=second)
        assert refused("ann", message="x", action=EDIT_ACTION, target_id=second) == (
            f"message {second} was deleted"
        )
        ok("cy", message="all things tested", action=TOPIC)
        ok("ann", message="psst", room="@ann,bob")
        assert "only they may use it" in refused("cy", message="me?", room="@ann,bob")
        with pytest.raises(grpc.RpcError) as error:
            client.history("cy", room="@ann,bob")
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

        page = client.history("ann", room="general")
        assert [(m.id, m.message, m.deleted, m.replies) for m in page.messages] == [
            (first, "one!", False, 1),
            (answer, "agreed", False, 0),
            (second, "", True, 0),
        ]
        assert page.messages[0].HasField("edited_at")
        assert [(r.emoji, r.count, list(r.users)) for r in page.messages[0].reactions] == [
            ("👍", 1, ["bob"])
        ]
        assert page.messages[1].reply_to == first
        thread = client.history("ann", room="general", thread=first)
        assert [m.id for m in thread.messages] == [first, answer]
        assert client.rooms("ann") == ["@ann,bob", "general"]
        assert client.rooms("cy") == ["general"]
        # A client that asks for no features sees the tutorial's kinds, messages as they are now.
        assert client.log("cy") == [(0, "one!"), (0, "agreed")]
        kinds = [kind for kind, _ in client.log("cy", "edits,reactions,replies,topics")]
        assert kinds == [0, EDIT, REACTION, 0, REACTION, REACTION, 0, DELETE, 10]

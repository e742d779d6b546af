"""Thousands of random and mutated request payloads, sent raw to every method of a real server,
and request streams whose message prefixes lie.

Each call must end with the status the bytes deserve (OK, or INVALID_ARGUMENT, or
RESOURCE_EXHAUSTED over the size limit, or UNIMPLEMENTED for a compressed flag; never UNKNOWN or
INTERNAL), only valid chat messages may be stored, and the server must still answer normally
afterwards.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import betterproto
import pytest
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import contract
from chat.client.status import raise_status
from chat.model import CHAT, DELETE, EDIT, REACTION, TOPIC, Draft
from chat.server import rules
from chat.server.encoding.base import Encoding
from chat.server.encoding.betterproto_impl import BetterprotoEncoding
from chat.server.encoding.handwritten_impl import HandwrittenEncoding
from gen.grpc.chat import (
    ChatServiceStub,
    MessageReply,
    MessageReplyKind,
    MessageRequest,
    MessagesRequest,
    StatsReply,
    StatsRequest,
)
from harness import RawRequests, ServerProcess, path_flags

pytestmark = pytest.mark.slow

SERVICE = f"/{contract.SERVICE}/"
MAX_MESSAGE_BYTES, MAX_TEXT_BYTES = 512, 64
EXAMPLES = 1500
UINT64_MAX = 2**64 - 1
T = TypeVar("T")

# --- payloads --------------------------------------------------------------------------------

good_names = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
names = st.one_of(good_names, good_names, st.text(max_size=70))
texts = st.one_of(st.text(max_size=80), st.text(alphabet="é€😀", max_size=30))
unsigned = st.one_of(
    st.integers(0, 1000), st.integers(2**62, UINT64_MAX), st.integers(0, UINT64_MAX)
)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding, then one to four mutations of the kinds a broken client produces."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(
            st.sampled_from(
                ["truncate", "flip", "insert", "delete", "key", "huge", "repeat", "unknown"]
            )
        )
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "key":  # a field key with any number and wire type, e.g. a wrong one
            data[at:at] = betterproto.encode_varint(
                draw(st.integers(0, 8)) << 3 | draw(st.integers(0, 7))
            )
        elif kind == "huge":  # a length-delimited field announcing far more than there is
            length = draw(st.integers(2**20, UINT64_MAX))
            data[at:at] = (
                betterproto.encode_varint(draw(st.integers(1, 5)) << 3 | 2)
                + betterproto.encode_varint(length)
                + b"x"
            )
        elif kind == "repeat":
            data.extend(bytes(data))
        else:  # a well-formed field from a newer client
            number = draw(st.integers(5, 2**29 - 1))
            data += betterproto.encode_varint(number << 3) + betterproto.encode_varint(
                draw(unsigned)
            )
    return bytes(data)


def payloads(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    big = st.binary(min_size=MAX_MESSAGE_BYTES - 8, max_size=MAX_MESSAGE_BYTES + 64)
    return st.one_of(st.binary(max_size=40), valid, valid, mutated(valid), mutated(valid), big)


stats_requests = st.builds(StatsRequest, room=names).map(bytes)
messages_requests = st.builds(
    MessagesRequest,
    room=st.one_of(st.just(""), st.just("seeded"), st.just("seeded"), names),
    after_id=unsigned,
    limit=st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1)),
    follow=st.booleans(),
).map(bytes)
chat_requests = st.builds(
    MessageRequest,
    message=texts,
    user=st.one_of(st.just(""), names),
    room=st.one_of(st.just(""), names),
).map(bytes)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """The DATA of a request stream: gRPC messages whose 5-byte prefixes may lie (a compressed
    flag, a length that is too long, too short or huge), perhaps cut short."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        body = draw(st.one_of(chat_requests, st.binary(max_size=20)))
        flag = draw(st.sampled_from([0, 0, 0, 1, 255]))
        length = draw(
            st.one_of(st.just(len(body)), st.integers(0, len(body) + 8), st.integers(0, 2**32 - 1))
        )
        parts.append(bytes([flag]) + length.to_bytes(4, "big") + body)
    data = b"".join(parts)
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


after_ids = st.one_of(
    st.none(),
    st.integers(0, 2**70).map(str),
    st.from_regex(r"[ -~]{1,20}", fullmatch=True),
)

# --- what each payload deserves ---------------------------------------------------------------


def room_ok(room: str) -> bool:
    return not room or rules.name_problem("room", room) is None


ENCODINGS: dict[str, Encoding] = {
    "reference": BetterprotoEncoding(),
    "fast": HandwrittenEncoding(),
}
"""The parser each path's server runs, to say what a payload deserves there."""


def stats_expected(encoding: Encoding, data: bytes) -> Status:
    if len(data) > MAX_MESSAGE_BYTES:
        return Status.RESOURCE_EXHAUSTED
    try:
        request = encoding.parse_stats_request(data)
    except Exception:
        return Status.INVALID_ARGUMENT
    return Status.OK if room_ok(request.room) else Status.INVALID_ARGUMENT


def messages_expected(data: bytes) -> tuple[Status, MessagesRequest | None]:
    if len(data) > MAX_MESSAGE_BYTES:
        return Status.RESOURCE_EXHAUSTED, None
    try:
        request = MessagesRequest.FromString(data)
    except Exception:
        return Status.INVALID_ARGUMENT, None
    return (Status.OK if room_ok(request.room) else Status.INVALID_ARGUMENT), request


ENTRIES = {0: CHAT, 1: EDIT, 2: DELETE, 3: REACTION, 4: REACTION, 7: TOPIC}
"""The entry each action makes (another action number is refused)."""
ANSWERED: set[int] = {MessageReplyKind.ACK, MessageReplyKind.ERROR}


def chat_expected(encoding: Encoding, data: bytes, after_id: str | None) -> tuple[Status, set[int]]:
    """The status, and the reply kinds the message may get (none: no reply). An action, or a
    reply to a message, is answered ACK or ERROR by what is stored by then."""
    if after_id and (not after_id.isdigit() or int(after_id) > UINT64_MAX):
        return Status.INVALID_ARGUMENT, set()
    if len(data) > MAX_MESSAGE_BYTES:
        return Status.RESOURCE_EXHAUSTED, set()
    try:
        request = encoding.parse_request(data)
    except Exception:
        return Status.INVALID_ARGUMENT, set()
    kind = ENTRIES.get(request.action, -1)
    draft = Draft(
        request.room or "fuzz",
        request.user or "fuzzer",
        request.message,
        kind=kind,
        target_id=request.target_id if kind not in (CHAT, TOPIC) else 0,
    )
    if rules.draft_problem(draft, MAX_TEXT_BYTES):
        return Status.OK, {int(MessageReplyKind.ERROR)}
    if kind != CHAT or request.reply_to:
        return Status.OK, ANSWERED
    return Status.OK, {int(MessageReplyKind.ACK)}


# --- the server and raw calls ------------------------------------------------------------------

TYPES: dict[str, tuple[type, type]] = {
    "GetStats": (StatsRequest, StatsReply),
    "GetMessages": (MessagesRequest, MessageReply),
    "SendAndReceiveMessage": (MessageRequest, MessageReply),
}


class Target:
    """A real server process and a raw-bytes channel to it, driven from synchronous tests."""

    def __init__(self, server: ServerProcess, encoding: Encoding) -> None:
        self.server = server
        self.encoding = encoding
        self.loop = asyncio.new_event_loop()
        self.channel = self.run(self._channel())

    async def _channel(self) -> Channel:
        return Channel("127.0.0.1", self.server.port, codec=RawRequests())

    def run(self, coroutine: Awaitable[T]) -> T:
        assert self.server.proc is not None and self.server.proc.poll() is None, "server died"
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 30))

    async def call(
        self,
        method: str,
        cardinality: Cardinality,
        data: bytes,
        metadata: dict[str, str] | None = None,
    ) -> tuple[Status, list[Any]]:
        """Sends `data` as the one request of a call; returns its status and replies."""
        request, reply = TYPES[method]
        stream: Stream[Any, Any] = self.channel.request(
            SERVICE + method, cardinality, request, reply, timeout=10, metadata=metadata
        )
        replies: list[Any] = []
        try:
            async with stream:
                await stream.send_message(data, end=True)
                while (answer := await stream.recv_message()) is not None:
                    replies.append(answer)
                raise_status(stream)
        except StreamTerminatedError:
            try:
                raise_status(stream)
            except GRPCError as error:
                return error.status, replies
            raise
        except GRPCError as error:
            return error.status, replies
        return Status.OK, replies

    async def call_framed(
        self, method: str, cardinality: Cardinality, data: bytes
    ) -> tuple[Status, list[Any]]:
        """Sends `data` as the whole request stream, prefixes included, then ends it."""
        request, reply = TYPES[method]
        stream: Stream[Any, Any] = self.channel.request(
            SERVICE + method, cardinality, request, reply, timeout=10
        )
        replies: list[Any] = []
        try:
            async with stream:
                await stream.send_request()
                await stream._stream.send_data(data, end_stream=True)
                stream._end_done = True  # what stream.end() records after the same frame
                while (answer := await stream.recv_message()) is not None:
                    replies.append(answer)
        except GRPCError as error:
            return error.status, replies
        return Status.OK, replies

    async def follow(self, data: bytes) -> Status:
        """A GetMessages call that should stay open: OK once the server counts the follower
        (then it hangs up and waits until the server has let go), else the call's status."""
        stub = ChatServiceStub(self.channel)
        answer = asyncio.create_task(self.call("GetMessages", Cardinality.UNARY_STREAM, data))
        while not answer.done() and not (await stub.get_stats(StatsRequest())).num_connected:
            pass  # each round trip gives the server time to take the call
        if answer.done():
            return answer.result()[0]
        answer.cancel()  # hangs up: RST_STREAM
        await asyncio.gather(answer, return_exceptions=True)
        while (await stub.get_stats(StatsRequest())).num_connected:
            pass
        return Status.OK

    def stats(self) -> StatsReply:
        return self.run(ChatServiceStub(self.channel).get_stats(StatsRequest()))

    def close(self) -> None:
        self.channel.close()
        self.loop.close()


@pytest.fixture
def target(tmp_path: Path, path: str) -> Iterator[Target]:
    server = ServerProcess(
        tmp_path / "server.log",
        f"sqlite:///{tmp_path / 'chat.db'}",
        *("--max-message-bytes", str(MAX_MESSAGE_BYTES), "--max-text-bytes", str(MAX_TEXT_BYTES)),
        *path_flags(path),
        *("--rate-limit", "0"),  # thousands of messages a second, on purpose
    ).start()
    target = Target(server, ENCODINGS[path])
    yield target
    target.close()
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()


def fuzz(test: Callable[..., None], **strategies: st.SearchStrategy[Any]) -> None:
    """Runs `test` on EXAMPLES drawn examples."""
    settings(max_examples=EXAMPLES, deadline=None, database=None)(given(**strategies)(test))()


def assert_still_serving(target: Target, messages: int) -> None:
    stats = target.stats()
    assert stats.num_messages == messages, "a refused payload was stored"
    assert stats.num_connected == 0
    assert "Traceback" not in target.server.log()


# --- the tests ---------------------------------------------------------------------------------


def test_get_stats_answers_every_payload_with_its_status(target: Target) -> None:
    def one(data: bytes) -> None:
        status, _ = target.run(target.call("GetStats", Cardinality.UNARY_UNARY, data))
        assert status is stats_expected(target.encoding, data)

    fuzz(one, data=payloads(stats_requests))
    assert_still_serving(target, 0)


def test_get_messages_answers_every_payload_with_its_status(target: Target) -> None:
    seeded = [bytes(MessageRequest(message=f"m{n}", room="seeded")) for n in range(20)]
    for data in seeded:
        status, replies = target.run(
            target.call("SendAndReceiveMessage", Cardinality.STREAM_STREAM, data)
        )
        assert status is Status.OK and replies[0].kind == MessageReplyKind.ACK

    def one(data: bytes) -> None:
        expected, request = messages_expected(data)
        if expected is Status.OK and request is not None and request.follow:
            assert target.run(target.follow(data)) is Status.OK
            return
        status, replies = target.run(target.call("GetMessages", Cardinality.UNARY_STREAM, data))
        assert status is expected
        assert all(reply.kind == MessageReplyKind.CHAT for reply in replies)

    fuzz(one, data=payloads(messages_requests))
    assert_still_serving(target, len(seeded))


def test_send_and_receive_answers_every_payload_with_its_status(target: Target) -> None:
    acked = 0

    def one(data: bytes, after_id: str | None) -> None:
        nonlocal acked
        expected, kinds = chat_expected(target.encoding, data, after_id)
        metadata = {"chat-user": "fuzzer", "chat-room": "fuzz"}
        if after_id is not None:
            metadata["chat-after-id"] = after_id
        status, replies = target.run(
            target.call("SendAndReceiveMessage", Cardinality.STREAM_STREAM, data, metadata)
        )
        assert status is expected
        own = [reply for reply in replies if reply.kind != MessageReplyKind.CHAT]
        assert len(own) == (1 if kinds else 0)
        assert {reply.kind for reply in own} <= kinds
        acked += sum(reply.kind == MessageReplyKind.ACK and reply.id > 0 for reply in own)

    fuzz(one, data=payloads(chat_requests), after_id=after_ids)
    assert_still_serving(target, acked)


def test_lying_message_prefixes_get_a_status_and_store_only_whole_messages(
    target: Target,
) -> None:
    """GetMessages is left out: a valid request there may follow forever."""
    acked = 0
    allowed = {
        Status.OK,
        Status.INVALID_ARGUMENT,
        Status.RESOURCE_EXHAUSTED,
        Status.UNIMPLEMENTED,  # a compressed flag: no compression is offered
    }

    def one(data: bytes, bidi: bool) -> None:
        nonlocal acked
        if bidi:
            method, cardinality = "SendAndReceiveMessage", Cardinality.STREAM_STREAM
        else:
            method, cardinality = "GetStats", Cardinality.UNARY_UNARY
        status, replies = target.run(target.call_framed(method, cardinality, data))
        assert status in allowed
        if bidi:
            acked += sum(reply.kind == MessageReplyKind.ACK for reply in replies)

    fuzz(one, data=framed(), bidi=st.booleans())
    assert_still_serving(target, acked)


@pytest.mark.parametrize(
    "data", [b"\x00", b"\x00\x00\x00\x00\x05ab"], ids=["inside-prefix", "inside-body"]
)
@pytest.mark.parametrize("bidi", [False, True], ids=["GetStats", "SendAndReceiveMessage"])
def test_a_request_stream_that_ends_inside_a_message_is_invalid_argument(
    target: Target, data: bytes, bidi: bool
) -> None:
    method, cardinality = (
        ("SendAndReceiveMessage", Cardinality.STREAM_STREAM)
        if bidi
        else ("GetStats", Cardinality.UNARY_UNARY)
    )
    status, _ = target.run(target.call_framed(method, cardinality, data))
    assert status is Status.INVALID_ARGUMENT
    assert_still_serving(target, 0)

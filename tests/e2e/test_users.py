"""Users and rooms end to end: `chat-server token`, a server asking for signed tokens, the
tutorial's grpcio client and ours holding one, and flood control shared by Redis replicas."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from bench.tutorial import generate
from chat.contract import bearer
from chat.server.config import Settings
from gen.grpc.chat import ChatServiceStub, MessageReplyKind, StatsRequest
from harness import (
    ROOT,
    Chatter,
    RedisProcess,
    ServerProcess,
    clean_environment,
    refused_server_start,
    run_client,
)

Start = Callable[..., ServerProcess]
Connect = Callable[[ServerProcess], Channel]
SECRET = "0123456789abcdef0123456789abcdef-the-server-secret"
KEY = {"CHAT_JWT_SECRET": SECRET}
ERROR = MessageReplyKind.ERROR


def token(*flags: str, env: dict[str, str] | None = None) -> str:
    """`chat-server token FLAGS`: the one line it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "chat.server", "token", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **(env if env is not None else KEY)},
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1, result.stdout
    return result.stdout.strip()


def refused_token(*flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "chat.server", "token", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **KEY},
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def test_a_minted_token_names_the_user_its_rooms_and_lasts_its_ttl() -> None:
    minted = token("--user", "ann", "--rooms", "general,team-*", "--ttl", "90m")
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["rooms"], claims["exp"] - claims["iat"]) == (
        "ann",
        ["general", "team-*"],
        90 * 60,
    )
    plain = jwt.decode(token("--user", "bob"), SECRET, algorithms=["HS256"])
    assert "rooms" not in plain and "mod" not in plain
    moderator = token("--user", "mo", "--mod", "general, team-*")
    assert jwt.decode(moderator, SECRET, algorithms=["HS256"])["mod"] == ["general", "team-*"]
    checked = token("--user", "cid", "--jwt-audience", "chat", "--jwt-issuer", "us")
    claims = jwt.decode(checked, SECRET, algorithms=["HS256"], audience="chat", issuer="us")
    assert claims["sub"] == "cid"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--user", "ann smith"], "user name 'ann smith' must be"),
        (["--user", "ann", "--ttl", "forever"], "--ttl 'forever' is not a lifetime"),
        (["--user", "ann", "--rooms", "general,no way"], "--rooms: 'no way' is not a room"),
        (["--user", "ann", "--mod", "@ann,bob"], "--mod: '@ann' is not a room"),
        (["--user", "ann", "--jwt-private-key", "/no/such.pem"], "give one key"),
    ],
)
def test_a_token_that_cannot_be_minted_is_refused_in_one_line(
    flags: list[str], reason: str
) -> None:
    assert reason in refused_token(*flags)


def test_a_token_without_a_user_is_a_usage_error_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chat.server", "token"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=clean_environment(KEY),
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "chat-server token: Missing option '--user' (see chat-server token --help)\n"
    )


@pytest.mark.parametrize(
    ("flags", "env", "reason", "code"),
    [
        (["--token", "shared", "--jwt-secret", SECRET], {}, "two ways to authenticate", 2),
        ([], {"CHAT_TOKEN": "shared", "CHAT_JWT_SECRET": SECRET}, "two ways to authenticate", 2),
        (["--jwt-secret", "short"], {}, "--jwt-secret is 5 bytes; use at least 32", 1),
        (["--jwt-audience", "chat"], {}, "--jwt-audience needs --jwt-secret", 2),
        (["--jwt-public-key", "/no/such.pem"], {}, "cannot read --jwt-public-key", 1),
        (["--jwt-secret", SECRET, "--jwt-algorithms", "RS256"], {}, "RS256 needs a public", 1),
        (["--rate-limit", "-1"], {}, "--rate-limit: -1.0 is not in the range x>=0", 2),
        (["--rate-burst", "0"], {}, "--rate-burst: 0 is not in the range x>=1", 2),
    ],
)
def test_a_server_with_conflicting_or_unusable_auth_settings_refuses_to_start(
    flags: list[str], env: dict[str, str], reason: str, code: int
) -> None:
    """Settings that cannot be right are usage errors (2); a key that cannot be used, 1."""
    assert reason in refused_server_start(*flags, env=env, code=code)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_a_token_signed_with_a_private_key_is_accepted_with_its_public_key(
    server_process: Start, channel_to: Connect, tmp_path: Path, kind: str
) -> None:
    private = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    (tmp_path / "private.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "public.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    minted = token("--user", "ann", "--jwt-private-key", str(tmp_path / "private.pem"), env={})
    assert jwt.get_unverified_header(minted)["alg"] == ("RS256" if kind == "rsa" else "ES256")
    server = server_process("memory://", "--jwt-public-key", str(tmp_path / "public.pem"))
    stub = ChatServiceStub(channel_to(server), timeout=10, metadata=bearer(minted))
    assert (await stub.get_stats(StatsRequest())).num_messages == 0
    forged = jwt.encode({"sub": "ann", "exp": 2**31}, SECRET, algorithm="HS256")
    stats = run_client(["--server", server.address, "--token", forged, "stats"])
    assert stats.returncode == 1
    assert "UNAUTHENTICATED: the token's algorithm is not accepted here" in stats.stderr


def test_a_tutorial_grpcio_client_with_anns_token_posts_as_ann_and_reads_only_her_rooms(
    server_process: Start, tmp_path: Path
) -> None:
    defaults = Settings()  # the default flood control serves the tutorial's client
    server = server_process(
        "memory://",
        *("--jwt-secret", SECRET),
        *("--rate-limit", str(defaults.rate_limit), "--rate-burst", str(defaults.rate_burst)),
    )
    admin = token("--user", "admin")
    secret = run_client(
        ["--server", server.address, "--token", admin, "chat", "--user", "admin", "--room", "ops"],
        "the secret plan\n",
    )
    assert secret.returncode == 0, secret.stderr
    ann = token("--user", "ann", "--rooms", "general,team-*")
    pb2, pb2_grpc = generate(tmp_path)
    with grpc.insecure_channel(server.address) as channel:
        stub: Any = pb2_grpc.ChatServiceStub(channel)
        as_ann = [("authorization", f"Bearer {ann}")]
        requests = (pb2.MessageRequest(message=text) for text in ("one", "two", "three"))
        replies = stub.SendAndReceiveMessage(requests, metadata=as_ann, timeout=10)
        assert [reply.message for reply in replies] == [
            "Server Responding to one",
            "Server Responding to two",
            "Server Responding to three",
        ]
        assert stub.GetStats(pb2.EmptyRequest(), metadata=as_ann, timeout=10).num_messages == 3
        history = stub.GetMessages(pb2.EmptyRequest(), metadata=as_ann, timeout=10)
        assert [reply.message for reply in history] == ["one", "two", "three"]
        for metadata in ([], [("authorization", "Bearer " + ann[:-2] + "xx")]):
            with pytest.raises(grpc.RpcError) as error:
                stub.GetStats(pb2.EmptyRequest(), metadata=metadata, timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "auth: signed tokens (HS256); flood control: 10/s, burst 20" in server.log()
    users = run_client(["--server", server.address, "--token", admin, "messages", "--json"])
    assert [line.split('"user": ')[1][:6] for line in users.stdout.splitlines()] == [
        '"admin',
        '"ann",',
        '"ann",',
        '"ann",',
    ]


async def test_our_client_says_in_one_line_what_a_refused_token_means(
    server_process: Start, channel_to: Connect
) -> None:
    server = server_process("memory://", "--jwt-secret", SECRET)
    ann = token("--user", "ann", "--rooms", "general")
    address = ["--server", server.address]
    posted = run_client([*address, "--token", ann, "chat", "--user", "ann"], "hello\n")
    assert (posted.returncode, posted.stdout) == (0, "Server Responding to hello\n")
    impostor = run_client([*address, "--token", ann, "chat", "--user", "bob"], "hi\n")
    other_room = run_client([*address, "--token", ann, "stats", "--room", "ops"])
    old = jwt.encode({"sub": "ann", "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    late = run_client([*address, "--token", old, "messages"])
    for result in (impostor, other_room, late):
        assert (result.returncode, result.stdout) == (1, "")
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert impostor.stderr == (
        "chat: your token does not allow this (PERMISSION_DENIED: chat-user 'bob' is not you: "
        "your token is for user 'ann')\n"
    )
    assert other_room.stderr.startswith(
        "chat: your token does not allow this (PERMISSION_DENIED: your token does not allow "
        "room 'ops'"
    )
    assert late.stderr == (
        "chat: the server does not know who you are (UNAUTHENTICATED: the token has expired: "
        "get a new one); give a valid token with --token or CHAT_TOKEN\n"
    )
    assert "auth: signed tokens (HS256); flood control: off" in server.log()
    health = HealthStub(channel_to(server))  # health stays open without a token
    reply = await health.Check(HealthCheckRequest(service=""), timeout=10)
    assert reply.status == HealthCheckResponse.SERVING


def test_our_client_speaks_as_the_user_its_signed_token_names_without_being_told(
    server_process: Start,
) -> None:
    server = server_process("memory://", "--jwt-secret", SECRET)
    ann = token("--user", "ann")
    address = ["--server", server.address, "--token", ann]
    posted = run_client([*address, "chat"], "hello\n", env={"CHAT_USER": ""})
    assert (posted.returncode, posted.stdout) == (0, "Server Responding to hello\n"), posted.stderr
    assert run_client([*address, "messages"]).stdout.endswith("[general] ann: hello\n")


async def test_the_flood_limit_holds_across_redis_replicas(
    server_process: Start, redis_server: RedisProcess, channel_to: Connect
) -> None:
    flags = ("--jwt-secret", SECRET, "--rate-limit", "0.001", "--rate-burst", "3")
    replicas = [server_process(redis_server.url, *flags) for _ in range(2)]
    ann, bob = token("--user", "ann"), token("--user", "bob")
    async with AsyncExitStack() as stack:
        streams = [await Chatter.open(stack, channel_to(server), token=ann) for server in replicas]
        kinds: list[int] = []
        for number in range(6):  # ann alternates between the replicas
            stream = streams[number % 2]
            await stream.send(f"flood {number}")
            while (reply := await stream.recv()) is not None and reply.kind not in (
                MessageReplyKind.ACK,
                ERROR,
            ):
                pass
            assert reply is not None
            kinds.append(reply.kind)
        bob_stream = await Chatter.open(stack, channel_to(replicas[1]), token=bob)
        assert (await bob_stream.say("bob is not ann")).kind == MessageReplyKind.ACK
    assert kinds.count(MessageReplyKind.ACK) == 3
    assert kinds.count(ERROR) == 3
    stats = ChatServiceStub(channel_to(replicas[0]), timeout=10, metadata=bearer(bob))
    assert (await stats.get_stats(StatsRequest())).num_messages == 4

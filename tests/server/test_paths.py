"""Which paths run: `auto` takes the fast ones where their gates pass and says why it did not
where they do not; an explicit fast path that its gate refuses stops the server in one line."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpclib.server
import pytest

from chat.errors import ConfigError
from chat.server import encoding, http2
from chat.server.app import grpc_server
from chat.server.encoding import handwritten_impl
from chat.server.encoding.betterproto_impl import BetterprotoEncoding
from chat.server.encoding.handwritten_impl import HandwrittenEncoding
from chat.server.gate import version_problem
from chat.server.health import HealthChecks
from chat.server.http2.direct_impl import DirectTransport, LeanServer
from chat.server.http2.grpclib_impl import GrpclibTransport, GuardedServer
from chat.server.service import ChatService
from harness import ServerProcess, refused_server_start, run_client

OLD_H2 = "4.2.0"
"""An h2 that grpclib accepts and the direct path was not tested with (FrameBuffer differs)."""


def test_auto_takes_both_fast_paths_with_the_tested_versions() -> None:
    chosen, why = encoding.select("auto")
    assert isinstance(chosen, HandwrittenEncoding) and why.startswith("auto: tested with")
    transport, why = http2.select("auto")
    assert isinstance(transport, DirectTransport) and why.startswith("auto: tested with")


def test_the_reference_paths_are_taken_when_asked_for() -> None:
    assert isinstance(encoding.select("betterproto")[0], BetterprotoEncoding)
    assert isinstance(http2.select("grpclib")[0], GrpclibTransport)


def test_a_version_outside_its_range_is_named() -> None:
    assert version_problem({"h2": ("0.1", "0.2")}) is not None
    assert "is outside the tested range 0.1 to below 0.2" in str(
        version_problem({"h2": ("0.1", "0.2")})
    )
    assert version_problem({"h2": ("4.3.0", "4.5")}) is None
    assert version_problem({"no-such-distribution": ("1", "2")}) == (
        "no-such-distribution is not installed"
    )


def test_the_hand_codec_stands_down_when_gen_has_a_field_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A field added to the contract and generated, but not taught to the hand codec."""
    known = dict(handwritten_impl.KNOWN_FIELDS["MessageReply"])
    del known[6]
    monkeypatch.setitem(handwritten_impl.KNOWN_FIELDS, "MessageReply", known)
    chosen, why = encoding.select("auto")
    assert isinstance(chosen, BetterprotoEncoding)
    assert "MessageReply has fields the hand-written codec does not know: [(6, 'kind')]" in why
    with pytest.raises(ConfigError, match="--encoding handwritten cannot run"):
        encoding.select("handwritten")


@pytest.fixture(scope="module")
def old_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a server that finds h2 4.2.0 before the pinned one."""
    target = tmp_path_factory.mktemp("old-h2")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    result = subprocess.run(
        [*pip, f"h2=={OLD_H2}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"pip could not install h2 {OLD_H2}: {result.stderr}")
        pytest.skip(f"pip could not install h2 {OLD_H2} (no package registry?)")
    yield {"PYTHONPATH": str(target)}


def test_with_an_untested_h2_auto_serves_through_grpclib_and_says_why(
    old_h2: dict[str, str], tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "server.log", "memory://", env=old_h2).start()
    try:
        chat = run_client(["--server", server.address, "chat"], "hello\n")
        assert chat.returncode == 0, chat.stderr
        assert "Server Responding to hello" in chat.stdout
        assert "Server has 1 message" in run_client(["--server", server.address, "stats"]).stdout
    finally:
        assert server.stop() == 0
    line = next(line for line in server.log().splitlines() if "listening on" in line)
    assert f"http2 grpclib (auto: h2 {OLD_H2} is outside the tested range" in line, line
    assert "encoding handwritten (auto: tested with betterproto" in line, line


def test_with_an_untested_h2_an_explicit_direct_refuses_to_start_in_one_line(
    old_h2: dict[str, str],
) -> None:
    line = refused_server_start("--http2", "direct", env=old_h2)
    assert f"--http2 direct cannot run: h2 {OLD_H2} is outside the tested range" in line


async def test_the_in_process_tests_run_the_server_each_path_ships(service: ChatService) -> None:
    """What `harness.serving` starts is what `serve()` starts: on the fast path the direct
    transport's own server, whose connections its sinks write to (on grpclib's plain server
    they would find no lean connection, and every delivery would fail)."""
    server = grpc_server(service, HealthChecks(service.store, service))
    expected = LeanServer if service.transport.name == "direct" else GuardedServer
    assert type(server) is expected


def test_without_the_hook_for_its_guard_no_server_starts_on_either_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A grpclib that renamed `Server._protocol_factory` would serve without any HTTP/2 limit."""
    renamed = (grpclib.server.Server, ("_protocol_factory_renamed",), "grpclib.server.Server")
    monkeypatch.setattr(http2, "GUARD_HOOKS", (renamed, *http2.GUARD_HOOKS[1:]))
    for choice in http2.CHOICES:
        with pytest.raises(ConfigError, match="the HTTP/2 limits cannot be installed"):
            http2.select(choice)

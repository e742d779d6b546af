"""The soak run at a small size: clients chat, edit, react and delete through a server SIGKILL
(SQLite), or through a replica SIGKILL and a Redis restart, and nothing is lost, doubled or shown
out of order, and every message ends the same on every server; through a memory server's
restart, resuming clients are shown the whole new history. And the state check itself: the fold
of the log, and a server that shows otherwise."""

import asyncio
import dataclasses
import signal
from pathlib import Path

import pytest

from chat.contract import Kind
from harness import RedisProcess
from soak import check
from soak.check import Entry, Message, State
from soak.ledger import Ledger, Own
from soak.run import Plan, Report, run

pytestmark = pytest.mark.slow

SMALL = Plan(
    clients=8, rooms=2, messages=50, hang_up_rate=0.03, action_rate=0.2, kills=1, rss_limit_mib=48
)
"""Small enough for seconds; memory is checked loosely here (a short run barely warms up) and
tightly by the full `just soak`. One request in five is an action, so that each kind is sent."""
VERBS = ("edit", "react", "unreact", "delete")


class FixtureRedis:
    """The test's redis-server, killed and restarted by the soak's faults."""

    def __init__(self, redis: RedisProcess) -> None:
        self.redis = redis
        self.url = redis.url

    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)

    async def stop(self, signum: int = signal.SIGKILL) -> int:
        await asyncio.to_thread(self.redis.stop, signum)
        return 0


async def test_nothing_is_lost_through_a_sqlite_server_sigkill(tmp_path: Path) -> None:
    report = await run(SMALL, tmp_path)
    assert report.ok, report.summary()
    assert_every_action_was_acked(report)
    assert [fault.split(" (")[0] for fault in report.faults] == [
        "server SIGKILLed and restarted at 50%"
    ]
    assert report.hang_ups > 0, report.summary()


async def test_nothing_is_lost_through_a_replica_sigkill_and_a_redis_restart(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    plan = dataclasses.replace(SMALL, store="redis")
    report = await run(plan, tmp_path, FixtureRedis(redis_server))
    assert report.ok, report.summary()
    assert_every_action_was_acked(report)
    assert [fault.split(" at ")[0] for fault in report.faults] == [
        "replica SIGKILLed",
        "replica restarted",
        "redis-server SIGKILLed and restarted",
    ]


async def test_clients_resuming_after_a_memory_server_restart_are_shown_the_new_history(
    tmp_path: Path,
) -> None:
    report = await run(dataclasses.replace(SMALL, store="memory"), tmp_path)
    assert report.ok, report.summary()
    assert "every client was shown 2 history epochs" in report.summary()
    assert_every_action_was_acked(report)


def assert_every_action_was_acked(report: Report) -> None:
    assert all(report.actions[verb] for verb in VERBS), report.actions


LOG = [
    Entry(1, "r", "ann", Kind.CHAT, "hi"),
    Entry(2, "r", "bob", Kind.CHAT, "yo"),
    Entry(3, "r", "bob", Kind.REACTION, "+1", target_id=1),
    Entry(4, "r", "ann", Kind.REACTION, "+1", target_id=1),
    Entry(5, "r", "bob", Kind.REACTION, "+1", target_id=1, removed=True),
    Entry(6, "r", "ann", Kind.EDIT, "hi!", target_id=1),
    Entry(7, "r", "ann", Kind.REACTION, "ok", target_id=2),
    Entry(8, "r", "bob", Kind.DELETE, "", target_id=2),
]


def test_the_log_folds_into_each_messages_state_and_names_actions_by_their_message() -> None:
    assert check.fold(LOG) == {
        1: State("r", "ann", "hi!", False, (("+1", 1, ("ann",)),)),
        2: State("r", "bob", "", True, ()),
    }
    assert [message.text for message in check.messages(LOG)] == [
        "hi",
        "yo",
        "<react hi> +1",
        "<react hi> +1",
        "<unreact hi> +1",
        "<edit hi> hi!",
        "<react yo> ok",
        "<delete yo>",
    ]
    assert check.messages(LOG)[-1] == Message(8, "r", "bob", "<delete yo>")


def test_the_state_check_fails_a_server_that_shows_a_message_otherwise_than_the_log() -> None:
    folded = check.fold(LOG)
    shown = sorted(folded.items())
    stale = [(1, State("r", "ann", "hi!", False, (("+1", 2, ("ann", "bob")),))), shown[1]]
    assert check.states_agree(folded, {"a": shown, "b": shown}).ok
    for wrong in (stale, shown[::-1], [*shown, shown[1]]):
        result = check.states_agree(folded, {"a": shown, "b": wrong})
        assert not result.ok
        assert "a (0 wrong)" in result.detail and "b (0 wrong)" not in result.detail


def test_a_client_whose_edit_or_reaction_the_log_lacks_fails_its_expectations() -> None:
    folded = check.fold(LOG)
    ann = Ledger("ann", "r", own={1: Own("hi", "hi!")}, reactions={(1, "+1"): None})
    bob = Ledger("bob", "r", own={2: Own("yo", "", deleted=True)})
    assert check.clients_expectations_hold([ann, bob], folded).ok
    unedited = Ledger("ann", "r", own={1: Own("hi", "hi")}, reactions={(1, "+1"): None})
    unreacted = Ledger("ann", "r", own={1: Own("hi", "hi!")})
    undeleted = Ledger("bob", "r", own={2: Own("yo", "yo")})
    for wrong in (unedited, unreacted, undeleted):
        assert not check.clients_expectations_hold([wrong], folded).ok

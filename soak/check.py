"""The end-of-run checks: what the clients recorded against what the servers stored and report."""

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from chat.contract import Kind
from chat.model import REACTION_USERS
from soak.ledger import Ledger, action_text

KiB_PER_MiB = 1024


class Entry(NamedTuple):
    """One entry of the log, as GetMessages with the soak's features shows it: a message (CHAT)
    or an action on one (EDIT, DELETE, REACTION, `removed` when taken off)."""

    id: int
    room: str
    user: str
    kind: int
    text: str
    target_id: int = 0
    removed: bool = False


class Message(NamedTuple):
    """One stored entry as the soak's records name it: a message's text, or an action as
    `action_text` names it (`<delete u001 7>`)."""

    id: int
    room: str
    user: str
    text: str


Reactions = tuple[tuple[str, int, tuple[str, ...]], ...]
"""A message's reactions: each emoji, how many put it on, and (sorted) the first
REACTION_USERS of them; by emoji."""


class State(NamedTuple):
    """A message as it is now: its text ('' once deleted), whether deleted, its reactions."""

    room: str
    user: str
    text: str
    deleted: bool
    reactions: Reactions


def messages(log: Iterable[Entry]) -> list[Message]:
    """The log as the soak's records name its entries: an action by the original text of the
    message it acts on (`#id` if the log has no such message before it)."""
    originals: dict[int, str] = {}
    named = []
    for entry in log:
        if entry.kind == Kind.CHAT:
            originals[entry.id] = text = entry.text
        else:
            target = originals.get(entry.target_id, f"#{entry.target_id}")
            text = action_text(_verb(entry), target, entry.text)
        named.append(Message(entry.id, entry.room, entry.user, text))
    return named


def _verb(entry: Entry) -> str:
    if entry.kind == Kind.REACTION:
        return "unreact" if entry.removed else "react"
    return {Kind.EDIT: "edit", Kind.DELETE: "delete"}.get(entry.kind, f"kind {entry.kind}")


def fold(log: Iterable[Entry]) -> dict[int, State]:
    """Every message's state now, by id, from the log: the actions applied in id order, as the
    contract says (an edit sets the text, a delete empties it and takes the reactions off, a
    reaction counts once per user and emoji)."""
    texts: dict[int, tuple[str, str, str, bool]] = {}  # room, user, text, deleted
    reactions: dict[int, dict[str, dict[str, None]]] = {}  # emoji: its users, in order
    for entry in log:
        if entry.kind == Kind.CHAT:
            texts[entry.id] = (entry.room, entry.user, entry.text, False)
            reactions[entry.id] = {}
        elif entry.target_id not in texts:
            continue  # an action on no message: `messages` names it `#id`, never sent
        elif entry.kind == Kind.EDIT:
            room, user, _, deleted = texts[entry.target_id]
            texts[entry.target_id] = (room, user, entry.text, deleted)
        elif entry.kind == Kind.DELETE:
            room, user, _, _ = texts[entry.target_id]
            texts[entry.target_id] = (room, user, "", True)
            reactions[entry.target_id] = {}
        elif entry.kind == Kind.REACTION:
            users = reactions[entry.target_id].setdefault(entry.text, {})
            users.pop(entry.user, None)
            if not entry.removed:
                users[entry.user] = None
            elif not users:
                del reactions[entry.target_id][entry.text]
    return {id: State(*text, _reactions(reactions[id])) for id, text in texts.items()}


def _reactions(on: dict[str, dict[str, None]]) -> Reactions:
    return tuple(
        (emoji, len(users), tuple(sorted(list(users)[:REACTION_USERS])))
        for emoji, users in sorted(on.items())
    )


@dataclass(frozen=True, slots=True)
class Result:
    """One check: passed or not, and the figures that say so."""

    name: str
    ok: bool
    detail: str


def acked_are_stored(ledgers: Iterable[Ledger], history: list[Message]) -> Result:
    """No ACK without storage: every ACKed id is stored, with its sender, room and text (an
    action: its kind, the message it acts on and its own text)."""
    by_id = {message.id: message for message in history}
    acked = wrong = 0
    example = ""
    for ledger in ledgers:
        for id, text in ledger.acked.items():
            acked += 1
            if by_id.get(id) != Message(id, ledger.room, ledger.user, text):
                wrong += 1
                example = example or f"; e.g. id {id} {text!r}: stored {by_id.get(id)}"
    return Result(
        "every ACKed message and action is stored as sent",
        acked > 0 and wrong == 0,
        f"{acked - wrong:,} of {acked:,} found{example}",
    )


def sent_are_stored_once(ledgers: Iterable[Ledger], history: list[Message]) -> Result:
    """Every message and action a client sent, ACKed at once or resent after a broken stream,
    is stored exactly once; none is stored that its user did not send. What was stored in a
    history since replaced (a memory store restarted) went with it."""
    ledgers = list(ledgers)
    sent = {(ledger.user, text) for ledger in ledgers for text in ledger.sent}
    gone = {(ledger.user, text) for ledger in ledgers for text in ledger.forgotten}
    counts = Counter((message.user, message.text) for message in history)
    twice = [key for key, count in counts.items() if count > 1]
    unsent = [key for key in counts if key not in sent]
    lost = [key for key in sorted(sent - gone) if key not in counts]
    detail = (
        f"{len(sent):,} sent, {len(history):,} stored, {len(lost)} lost, {len(twice)} stored "
        f"twice, {len(unsent)} never sent, {len(gone)} gone with a replaced history"
    )
    if twice or unsent or lost:
        detail += f"; e.g. {(twice or unsent or lost)[0]}"
    return Result(
        "every message and action sent is stored exactly once",
        bool(sent) and not twice and not unsent and not lost,
        detail,
    )


def epochs_changed_with_the_history(ledgers: Iterable[Ledger], histories: int) -> Result:
    """Every client was shown `histories` epochs: one more for each time the history was
    replaced (a memory store restarted), and never a new one while it was kept."""
    counts = Counter(ledger.epochs for ledger in ledgers)
    detail = ", ".join(f"{n} clients saw {epochs}" for epochs, n in sorted(counts.items()))
    return Result(
        f"every client was shown {histories} history epoch{'s' if histories > 1 else ''}",
        set(counts) == {histories},
        detail,
    )


def listeners_saw_their_rooms(ledgers: Iterable[Ledger], history: list[Message]) -> Result:
    """Each client saw its room's stored entries up to the last it saw, all of them, each once,
    in id order, across its reconnects (every client was listening before the first message)."""
    rooms: dict[str, list[int]] = defaultdict(list)
    for message in history:
        rooms[message.room].append(message.id)
    listeners = shown = bad = 0
    example = ""
    for ledger in ledgers:
        listeners += 1
        seen = ledger.seen()
        shown += len(seen)
        expected = [id for id in sorted(rooms[ledger.room]) if id <= ledger.last_seen]
        if seen != expected or ledger.last_seen != max(rooms[ledger.room], default=0):
            bad += 1
            if not example:
                example = f"; e.g. {ledger.user}: {_difference(seen, expected)}; {_streams(ledger)}"
    return Result(
        "every listener saw its whole room in id order, no gap, no duplicate",
        listeners > 0 and bad == 0,
        f"{listeners - bad} of {listeners} listeners, {shown:,} ids shown{example}",
    )


def _difference(seen: list[int], expected: list[int]) -> str:
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    duplicates = len(seen) - len(set(seen))
    disorder = sum(1 for a, b in itertools.pairwise(seen) if b <= a)
    return (
        f"{len(missing)} missing {missing[:3]}, {len(extra)} not in the room {extra[:3]}, "
        f"{duplicates} duplicates, {disorder} out of order, last seen {seen[-1:]} of "
        f"{expected[-1:]}"
    )


def _streams(ledger: Ledger) -> str:
    """The client's first streams: where each resumed, how many ids it showed, how it ended."""
    shown = [
        f"after {c.after_id}: {len(c.ids)} ids, {c.ended or 'open'}" for c in ledger.connections
    ]
    return "streams: " + "; ".join(shown[:4]) + ("; ..." if len(shown) > 4 else "")


def states_agree(folded: dict[int, State], views: dict[str, list[tuple[int, State]]]) -> Result:
    """Every server shows every message (GetHistory, page after page) once, in id order, as the
    log makes it: the same text, deleted flag and reactions on every replica, read after every
    restart."""
    wrong: dict[str, int] = {}
    example = ""
    for name, view in views.items():
        shown = dict(view)
        differ = sorted(
            id for id in folded.keys() | shown.keys() if folded.get(id) != shown.get(id)
        )
        twice = len(view) - len(shown)
        disorder = sum(
            1 for (a, x), (b, y) in itertools.pairwise(view) if x.room == y.room and b <= a
        )
        wrong[name] = len(differ) + twice + disorder
        if differ and not example:
            id = differ[0]
            example = f"; e.g. {name} shows {id} as {shown.get(id)}, the log makes {folded.get(id)}"
        elif (twice or disorder) and not example:
            example = f"; e.g. {name} shows {twice} messages twice, {disorder} out of order"
    deleted = sum(state.deleted for state in folded.values())
    reacted = sum(bool(state.reactions) for state in folded.values())
    return Result(
        "every message's text, deleted flag and reactions are the log's on every server",
        bool(folded) and bool(views) and not any(wrong.values()),
        f"{len(folded):,} messages ({deleted} deleted, {reacted} with reactions) read on "
        + ", ".join(f"{name} ({n} wrong)" for name, n in wrong.items())
        + example,
    )


def clients_expectations_hold(ledgers: Iterable[Ledger], folded: dict[int, State]) -> Result:
    """Each client's messages are as its ACKed edits and deletes left them, and its reactions
    are those it put on and has not taken off (nor lost with a deleted message)."""
    clients = mine_messages = mine_reactions = bad = 0
    example = ""
    for ledger in ledgers:
        clients += 1
        mine_messages += len(ledger.own)
        mine_reactions += len(ledger.reactions)
        mine = {
            (id, emoji)
            for id, state in folded.items()
            for emoji, _, users in state.reactions
            if ledger.user in users
        }
        wrong = [
            f"{id} {own.text!r}{' deleted' if own.deleted else ''}: the log makes {folded.get(id)}"
            for id, own in ledger.own.items()
            if (state := folded.get(id)) is None
            or (state.user, state.text, state.deleted) != (ledger.user, own.text, own.deleted)
        ]
        if mine != set(ledger.reactions):
            odd = sorted(mine ^ set(ledger.reactions))
            wrong.append(f"reactions {odd[:3]} are not where it put them")
        if wrong:
            bad += 1
            example = example or f"; e.g. {ledger.user}: {wrong[0]}"
    return Result(
        "every client's messages and reactions are as it made them",
        clients > 0 and mine_messages > 0 and bad == 0,
        f"{clients - bad} of {clients} clients, {mine_messages:,} messages and {mine_reactions:,} "
        f"reactions expected{example}",
    )


def clients_behaved(ledgers: Iterable[Ledger]) -> Result:
    """Nothing unexpected reached a client: no ERROR, no stray ACK, no hang, no odd status."""
    problems = [f"{ledger.user}: {problem}" for ledger in ledgers for problem in ledger.problems]
    detail = f"{len(problems)} problems" + (f"; e.g. {problems[0]}" if problems else "")
    return Result("no client saw an error, a hang or a stray reply", not problems, detail)


def memory_is_flat(samples: dict[str, tuple[int, int]], limit_mib: float) -> Result:
    """Each server's RSS at the end is within `limit_mib` of its RSS after warm-up."""
    parts, ok = [], True
    for name, (warm, end) in samples.items():
        growth = (end - warm) / KiB_PER_MiB
        ok = ok and growth <= limit_mib
        parts.append(
            f"{name} {warm / KiB_PER_MiB:.1f} -> {end / KiB_PER_MiB:.1f} MiB ({growth:+.1f})"
        )
    return Result(
        f"server memory flat after warm-up (within {limit_mib:g} MiB)",
        bool(samples) and ok,
        ", ".join(parts),
    )


def streams_closed(connected: dict[str, int]) -> Result:
    """Every server reports no open stream once the clients have left."""
    detail = ", ".join(f"{name} {count}" for name, count in connected.items())
    return Result("open streams back to 0", all(count == 0 for count in connected.values()), detail)


def logs_clean(logs: dict[str, str]) -> Result:
    """No server logged a traceback (a failure the status mapping did not expect)."""
    dirty = [name for name, text in logs.items() if "Traceback" in text]
    return Result(
        "no traceback in the server logs",
        not dirty,
        "tracebacks in " + ", ".join(dirty) if dirty else f"{len(logs)} logs read",
    )

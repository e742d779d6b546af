"""What the interactive chat keeps of the messages it showed: numbers, and each action applied
once, however often a resume replays it."""

from datetime import UTC, datetime

from chat.client.conversation import Conversation
from gen.grpc.chat import MessageReply, MessageReplyKind, Reaction

Kind = MessageReplyKind


def entry(kind: int, text: str = "", user: str = "ann", **fields: int | bool) -> MessageReply:
    reply = MessageReply(room="general", user=user, message=text, sent_at=datetime.now(UTC))
    reply.kind = Kind(kind)
    for name, value in fields.items():
        setattr(reply, name, value)
    return reply


def test_numbers_are_short_given_once_and_name_their_message() -> None:
    seen = Conversation()
    for id in (1041, 1043, 1041):
        seen.take(entry(Kind.CHAT, "hi", id=id))
    assert [seen.number(1041), seen.number(1043)] == [1, 2]
    assert [seen.id_of(1), seen.id_of(2), seen.id_of(3), seen.id_of(0)] == [1041, 1043, None, None]


def test_an_action_heard_twice_changes_nothing_the_second_time() -> None:
    seen = Conversation()
    seen.take(entry(Kind.CHAT, "helo", id=1))
    for kind, text, removed in [
        (Kind.EDIT, "hello", False),
        (Kind.REACTION, "👍", False),
        (Kind.REACTION, "👍", True),
        (Kind.DELETE, "", False),
    ]:
        assert seen.take(entry(kind, text, target_id=1, removed=removed)) is not None
        assert seen.take(entry(kind, text, target_id=1, removed=removed)) is None, kind


def test_a_reaction_of_someone_a_history_did_not_name_is_counted_off() -> None:
    seen = Conversation()
    many = entry(Kind.CHAT, "popular", id=1)
    many.reactions = [Reaction(emoji="👍", count=25, users=[f"u{n}" for n in range(20)])]
    seen.take(many)
    seen.take(entry(Kind.REACTION, "👍", user="u22", target_id=1, removed=True))
    seen.take(entry(Kind.REACTION, "👍", user="u3", target_id=1, removed=True))
    message = seen.message(1)
    assert message is not None
    assert message.counts() == [("👍", 23)]


def test_a_reply_quotes_the_first_words_of_what_it_answers() -> None:
    seen = Conversation()
    seen.take(entry(Kind.CHAT, "the first words of a rather long message", user="bob", id=7))
    assert seen.preview(7) == "#1 bob: the first words of a rather…"
    assert seen.preview(9) == "#2"
    assert seen.id_of(2) == 9

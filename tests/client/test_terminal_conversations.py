"""Conversations in the interactive chat, against a real server process: short numbers, replies,
edits, deletes, reactions, topics, direct conversations, older messages and the list of rooms,
each allowed and each refused, as the user sees them in a tmux pane."""

from collections.abc import Callable

from harness import Screen, ServerProcess

Open = Callable[..., Screen]
Post = Callable[..., int]
TIME = r"\d\d:\d\d:\d\d"


def chat(screen: Open, server: ServerProcess, user: str, *args: str) -> Screen:
    """`user` in the interactive chat, once its prompt shows."""
    opened = screen("--server", server.address, "chat", "--user", user, *args)
    opened.wait_for(f"{user}@")
    return opened


def test_a_reply_shows_the_number_and_first_words_of_what_it_answers(
    server: ServerProcess, screen: Open, post: Post
) -> None:
    post(server, "bob", message="the first words of a rather long message, and more")
    ann = chat(screen, server, "ann")
    ann.wait_for(f"{TIME} #1 bob: the first words of a rather long message, and more$")
    bob = chat(screen, server, "bob")
    ann.type("/reply 1 me too")
    shown = r"#2 ann: me too  ↳ re #1 bob: the first words of a rather…$"
    ann.wait_for(f"{TIME} {shown}")
    bob.wait_for(f"{TIME} {shown}")
    ann.type("/reply 7 nobody")
    ann.wait_for("-- no message #7 here: the numbers are those shown before messages")
    ann.type("/reply 1")
    ann.wait_for("-- /reply needs a message number and TEXT: /reply 3 me too")
    ann.type("/reply 1")
    ann.wait_for("-- /reply needs a message number and TEXT: /reply 3 me too")
    ann.type("/join dev")
    ann.wait_for("ann@dev>")
    ann.type("/reply 1 across rooms")
    ann.wait_for("not sent: no message 1 in dev: across rooms$")


def test_edits_show_the_new_text_marked_edited_for_the_author_only(
    server: ServerProcess, screen: Open, post: Post
) -> None:
    post(server, "bob", message="bob's own words")
    ann = chat(screen, server, "ann")
    bob = chat(screen, server, "bob")
    ann.type("helo wrld")
    ann.wait_for(f"{TIME} #2 ann: helo wrld$")
    ann.type("s/helo/hello/")
    ann.wait_for(f"{TIME} #2 ann: hello wrld \\(edited\\)$")
    bob.wait_for(f"{TIME} #2 ann: hello wrld \\(edited\\)$")
    ann.type("/edit 2 hello world")
    bob.wait_for(f"{TIME} #2 ann: hello world \\(edited\\)$")
    ann.type("s/nowhere/here/")
    ann.wait_for("-- your last message \\(#2\\) has no 'nowhere' to change")
    ann.type("/edit 1 not mine")
    ann.wait_for("not done: only its author may edit message 1: /edit 1 not mine$")
    ann.type("/edit 9 nothing")
    ann.wait_for("-- no message #9 here")
    carol = chat(screen, server, "carol")
    carol.wait_for(f"{TIME} #2 ann: hello world \\(edited\\)$")
    carol.type("s/a/b/")
    carol.wait_for("-- s/a/b/ corrects your last message in general: there is none")


def test_a_deleted_message_shows_deleted_and_only_its_author_may_delete_it(
    server: ServerProcess, screen: Open, post: Post
) -> None:
    post(server, "bob", message="bob stays")
    ann = chat(screen, server, "ann")
    bob = chat(screen, server, "bob")
    ann.type("a mistake")
    ann.wait_for(f"{TIME} #2 ann: a mistake$")
    ann.type("/delete 2")
    ann.wait_for(f"{TIME} #2 ann: \\(deleted\\)$")
    bob.wait_for(f"{TIME} #2 ann: \\(deleted\\)$")
    ann.type("/delete 1")
    ann.wait_for("not done: only its author or a moderator may delete message 1: /delete 1$")
    ann.type("/delete 2")
    ann.wait_for("not done: message 2 was deleted: /delete 2$")
    ann.type("/delete two")
    ann.wait_for("-- /delete needs a message number: /delete 3")
    carol = chat(screen, server, "carol")
    carol.wait_for(f"{TIME} #2 ann: \\(deleted\\)$")


def test_reactions_show_counted_under_the_line_and_react_again_takes_yours_back(
    server: ServerProcess, screen: Open, post: Post
) -> None:
    first = post(server, "bob", message="react to me")
    post(server, "carol", action=3, target_id=first, message="🎉")
    ann = chat(screen, server, "ann")
    ann.wait_for(f"{TIME} #1 bob: react to me\n    🎉 1$")
    bob = chat(screen, server, "bob")
    ann.type("/react 1 👍")
    ann.wait_for(f"{TIME} \\* ann reacted 👍 to #1 bob: react to me\n    🎉 1  👍 1$")
    bob.wait_for(f"{TIME} \\* ann reacted 👍 to #1 bob: react to me\n    🎉 1  👍 1$")
    bob.type("/react #1 👍")
    ann.wait_for(f"{TIME} \\* bob reacted 👍 to #1 bob: react to me\n    🎉 1  👍 2$")
    ann.type("/react 1 👍")
    bob.wait_for(f"{TIME} \\* ann took back 👍 from #1 bob: react to me\n    🎉 1  👍 1$")
    bob.type("/unreact 1 👍")
    ann.wait_for(f"{TIME} \\* bob took back 👍 from #1 bob: react to me\n    🎉 1$")
    ann.type("/react 1 two words")
    ann.wait_for(
        "not done: reaction 'two words' must be 1-32 bytes of UTF-8 with no whitespace: "
        "/react 1 two words$"
    )
    ann.type("/react 1")
    ann.wait_for("-- /react needs a message number and an EMOJI: /react 3 👍")


def test_a_topic_shows_when_set_on_entering_and_in_the_rooms(
    server: ServerProcess, screen: Open
) -> None:
    ann = chat(screen, server, "ann")
    bob = chat(screen, server, "bob")
    ann.type("/topic")
    ann.wait_for("-- general has no topic; /topic TEXT sets one")
    ann.type("/topic the room for tests")
    ann.wait_for(f"{TIME} \\* ann set the topic of general: the room for tests$")
    bob.wait_for(f"{TIME} \\* ann set the topic of general: the room for tests$")
    bob.type("/topic")
    bob.wait_for("-- the topic of general: the room for tests$")
    ann.type("/topic " + "x" * 300)
    ann.wait_for("not done: topic is 300 bytes; the limit is 256 bytes of UTF-8: /topic xxx")
    carol = chat(screen, server, "carol")
    carol.wait_for("-- general: no messages yet\n-- the topic of general: the room for tests\n")
    carol.type("/rooms")
    carol.wait_for(
        "-- 1 room; /join ROOM to enter one\n--   general \\(3 online\\): the room for tests$"
    )


def test_msg_opens_the_direct_conversation_that_only_its_users_may_enter(
    server: ServerProcess, screen: Open
) -> None:
    ann = chat(screen, server, "ann")
    ann.type("/msg bob psst, bob")
    ann.wait_for("ann@@ann,bob>")
    ann.wait_for(f"{TIME} #1 ann: psst, bob$")
    bob = chat(screen, server, "bob")
    bob.type("/rooms")
    bob.wait_for(
        "-- 1 direct conversation; /msg USER to write\n--   @ann,bob with ann \\(1 online\\)$"
    )
    bob.type("/msg ann")
    bob.wait_for("-- @ann,bob: the last message\n.* #1 ann: psst, bob\n")
    bob.type("hello ann")
    ann.wait_for(f"{TIME} #2 bob: hello ann$")
    carol = chat(screen, server, "carol")
    carol.type("/join @ann,bob")
    carol.wait_for(
        "-- cannot join @ann,bob: PERMISSION_DENIED: @ann,bob is a direct conversation of "
        "others: only they may use it; still in general"
    )
    carol.type("/rooms")
    listed = carol.wait_for("-- 1 room; /join ROOM to enter one\n--   general \\(1 online\\)$")
    assert "direct conversation;" not in listed, listed
    carol.type("/msg carol hi me")
    carol.wait_for("-- /msg writes to someone else")
    carol.type("/msg no!name hi")
    carol.wait_for("-- 'no!name' is not a user name")
    carol.type("/join @bob,ann")
    carol.wait_for("-- '@bob,ann' is not a room name: .*, or @ and 2-8 user names, sorted")


def test_more_and_page_up_show_older_messages_until_the_start(
    server: ServerProcess, screen: Open, post: Post
) -> None:
    for number in range(1, 46):  # by three users: each within flood control's burst
        post(server, ("bob", "cy", "dee")[number % 3], message=f"message {number}")
    ann = chat(screen, server, "ann")
    ann.wait_for(f"{TIME} #20 [a-z]+: message 45$")
    assert "message 25\n" not in ann.text()
    ann.type("/more")
    ann.wait_for("-- general: 20 older messages\n.* #21 [a-z]+: message 6\n")
    ann.wait_for(f"{TIME} #40 [a-z]+: message 25$")
    ann.write("half typed")
    ann.press("PageUp")
    ann.wait_for(
        "-- general: 5 older messages\n(.* #4[1-5] [a-z]+: message [1-5]\n){5}"
        "-- that is the start of general\nann@general> half typed$"
    )
    ann.press("C-u")
    ann.type("/more")
    ann.wait_for("-- no older messages in general")


def test_help_lists_every_command(server: ServerProcess, screen: Open) -> None:
    ann = chat(screen, server, "ann")
    ann.type("/help")
    shown = ann.wait_for("/quit +leave")
    for command in ("/msg USER", "/reply N", "/edit N", "s/OLD/NEW/", "/delete N", "/react N"):
        assert f"-- {command}" in shown, shown
    for command in ("/unreact N", "/topic", "/more", "PageUp", "/rooms", "/join ROOM", "/who"):
        assert command in shown, shown

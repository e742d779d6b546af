"""Conversations on the chat page in Chromium against a real server process: edits, reactions,
replies and threads, deletes, topics, older messages on scrolling up, and direct conversations
between pages and a terminal client (a grpclib stream, as `chat` opens one)."""

import re
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

import jwt
from grpclib.client import Channel
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from chat.server.auth import check_secret
from chat.server.tokens import mint
from gen.grpc.chat import MessageReplyKind, MessageRequestAction
from harness import Chatter, PipedClient, ServerProcess, run_client
from harness.pages import WAIT_MS, line, live, opened, post

Start = Callable[..., ServerProcess]
FEATURES = "edits,reactions,replies,topics"
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True}


async def act(page: Page, text: str, action: str) -> None:
    """Points at the line of `text` and presses one of its actions (Reply, React, Edit, Delete)."""
    shown = line(page, text)
    await shown.hover()
    await shown.get_by_role("button", name=action, exact=True).click()


async def texts(page: Page) -> list[str]:
    return await page.locator("#messages li[data-id] .text").all_inner_texts()


def say_as(server: ServerProcess, user: str, *lines: str, room: str = "general") -> None:
    """`lines` posted by the terminal client as `user`, one after the other."""
    args = ["--server", server.address, "chat", "--user", user, "--room", room]
    posted = run_client(args, "".join(f"{text}\n" for text in lines))
    assert posted.returncode == 0, posted.stderr


async def test_an_edit_shows_on_every_page_marked_edited_and_only_its_author_may_make_it(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
        await live(ann)
        await live(bob)
        await post(ann, "teh typo")
        await expect(line(bob, "teh typo")).to_be_visible(timeout=WAIT_MS)
        await act(ann, "teh typo", "Edit")
        box = ann.get_by_role("textbox", name="Message")
        await expect(box).to_have_value("teh typo")
        await expect(ann.locator("#context")).to_contain_text("Editing your message")
        await box.fill("the typo, fixed")
        await box.press("Enter")
        for page in (ann, bob):
            fixed = line(page, "the typo, fixed")
            await expect(fixed.locator(".edited")).to_have_text("(edited)", timeout=WAIT_MS)
            assert await texts(page) == ["the typo, fixed"]
        await line(bob, "the typo, fixed").hover()
        tools = line(bob, "the typo, fixed").get_by_role("group", name="Message actions")
        assert await tools.get_by_role("button").all_inner_texts() == ["Reply", "React"]
        await bob.reload()
        await live(bob)
        await expect(line(bob, "the typo, fixed").locator(".edited")).to_be_visible()
        await ann.get_by_role("textbox", name="Message").press("ArrowUp")
        await expect(box).to_have_value("the typo, fixed")
        await box.press("Escape")
        await expect(box).to_have_value("")
        await expect(ann.locator("#context")).to_be_hidden()


async def test_reactions_are_counted_chips_that_each_page_toggles(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
        await live(ann)
        await live(bob)
        await post(ann, "ship it?")
        await expect(line(bob, "ship it?")).to_be_visible(timeout=WAIT_MS)
        await act(bob, "ship it?", "React")
        await (
            line(bob, "ship it?")
            .get_by_role("group", name="Reactions")
            .get_by_role("button", name="👍")
            .click()
        )
        chip = {page: line(page, "ship it?").locator(".chip") for page in (ann, bob)}
        for page in (ann, bob):
            await expect(chip[page]).to_have_text("👍 1", timeout=WAIT_MS)
        await expect(chip[bob]).to_have_attribute("aria-pressed", "true")
        await expect(chip[ann]).to_have_attribute("aria-pressed", "false")
        await chip[ann].click()
        for page in (ann, bob):
            await expect(chip[page]).to_have_text("👍 2", timeout=WAIT_MS)
        await expect(chip[ann]).to_have_attribute("aria-pressed", "true")
        await chip[bob].click()
        for page in (ann, bob):
            await expect(chip[page]).to_have_text("👍 1", timeout=WAIT_MS)
        await chip[ann].click()
        for page in (ann, bob):
            await expect(chip[page]).to_have_count(0, timeout=WAIT_MS)
        await ann.reload()
        await live(ann)
        await expect(line(ann, "ship it?")).to_be_visible()
        await expect(chip[ann]).to_have_count(0)


async def test_a_reply_quotes_its_root_and_opens_the_thread_with_every_answer(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with AsyncExitStack() as stack:
        cat = await Chatter.open(stack, channel_to(server), user="cat", features=FEATURES)
        async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
            await live(ann)
            await live(bob)
            await post(ann, "lunch at noon?")
            root = await cat.recv_kind(MessageReplyKind.CHAT)
            await expect(line(bob, "lunch at noon?")).to_be_visible(timeout=WAIT_MS)
            await act(bob, "lunch at noon?", "Reply")
            await expect(bob.locator("#context")).to_contain_text("Replying to ann: lunch at noon?")
            await post(bob, "yes, count me in")
            await cat.say("me too", reply_to=root.id)  # type: ignore[arg-type]
            for page in (ann, bob):
                for answer in ("yes, count me in", "me too"):
                    quote = line(page, answer).locator(".quote")
                    await expect(quote).to_have_text("↪ ann: lunch at noon?", timeout=WAIT_MS)
                replies = line(page, "lunch at noon?").get_by_role("button", name="2 replies")
                await expect(replies).to_be_visible(timeout=WAIT_MS)
            await line(ann, "lunch at noon?").get_by_role("button", name="2 replies").click()
            thread = ann.get_by_role("region", name="Thread")
            await expect(thread.locator("li .text")).to_have_text(
                ["lunch at noon?", "yes, count me in", "me too"], timeout=WAIT_MS
            )
            await thread.get_by_role("button", name="Reply in thread").click()
            await post(ann, "booked a table")
            await expect(thread.locator("li .text")).to_have_text(
                ["lunch at noon?", "yes, count me in", "me too", "booked a table"]
            )
            heard = await cat.recv_kind(MessageReplyKind.CHAT)
            while heard.message != "booked a table":
                heard = await cat.recv_kind(MessageReplyKind.CHAT)
            assert heard.reply_to == root.id
            await ann.keyboard.press("Escape")
            await expect(thread).to_be_hidden()
            await bob.locator("#messages").get_by_role("button", name="In reply to").first.click()
            await expect(bob.get_by_role("region", name="Thread").locator("li")).to_have_count(
                4, timeout=WAIT_MS
            )


async def test_a_reply_to_a_message_older_than_the_page_quotes_it_all_the_same(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    async with AsyncExitStack() as stack:
        dan = await Chatter.open(stack, channel_to(server), user="dan", features=FEATURES)
        root = await dan.say("the very first question")
        for number in range(60):
            await dan.say(f"filler {number}")
        await dan.say("an answer, long after", reply_to=root.id)  # type: ignore[arg-type]
        async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
            await live(ann)
            quote = line(ann, "an answer, long after").locator(".quote")
            await expect(quote).to_have_text("↪ dan: the very first question", timeout=WAIT_MS)
            await expect(line(ann, "the very first question")).to_have_count(0)


async def test_a_deleted_message_shows_as_deleted_on_every_page_and_after_a_reload(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
        await live(ann)
        await live(bob)
        await post(ann, "kept")
        await post(ann, "sent to the wrong room")
        await expect(line(bob, "sent to the wrong room")).to_be_visible(timeout=WAIT_MS)
        await act(ann, "sent to the wrong room", "Delete")
        for page in (ann, bob):
            await expect(page.locator("#messages li.deleted .text")).to_have_text(
                "message deleted", timeout=WAIT_MS
            )
            assert await texts(page) == ["kept", "message deleted"]
            deleted = page.locator("#messages li.deleted")
            await deleted.hover()
            await expect(deleted.get_by_role("button")).to_have_count(0)
        await bob.reload()
        await live(bob)
        await expect(bob.locator("#messages li.deleted .text")).to_have_text("message deleted")
        assert await bob.get_by_text("sent to the wrong room").count() == 0


async def test_scrolling_up_shows_older_messages_page_by_page_in_order(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    said = [f"message {number:03}" for number in range(120)]
    say_as(server, "dan", *said)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general", **PHONE) as ann:
        await live(ann)
        shown = ann.locator("#messages li[data-id]")
        await expect(shown).to_have_count(50)
        await expect(line(ann, "message 119")).to_be_in_viewport()
        for count in (100, 120):
            await ann.locator("#messages").hover()
            await ann.mouse.wheel(0, -100_000)
            await expect(shown).to_have_count(count, timeout=WAIT_MS)
        assert await texts(ann) == said
        await expect(ann.get_by_role("button", name="older messages")).to_be_hidden()
        assert await ann.evaluate("document.scrollingElement.scrollWidth") <= 390


async def test_older_messages_come_by_keyboard_too(server_process: Start, browser: Browser) -> None:
    server = server_process(web=True)
    said = [f"message {number:03}" for number in range(60)]
    say_as(server, "dan", *said)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        older = ann.get_by_role("button", name="older messages")
        await older.focus()
        await ann.keyboard.press("Enter")
        await expect(ann.locator("#messages li[data-id]")).to_have_count(60, timeout=WAIT_MS)
        assert await texts(ann) == said


async def test_a_topic_set_on_one_page_shows_on_the_other_and_in_the_room_list(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
        await live(ann)
        await live(bob)
        box = ann.get_by_role("textbox", name="Message")
        await box.fill("/topic <b>release</b> on Friday")
        await box.press("Enter")
        for page in (ann, bob):
            await expect(page.locator("#topic")).to_have_text(
                "<b>release</b> on Friday", timeout=WAIT_MS
            )
        assert await texts(ann) == []
        async with opened(browser, url + "cat") as cat:
            await live(cat)
            rooms = cat.get_by_role("navigation", name="Rooms")
            await expect(rooms.locator(".topic")).to_have_text(["<b>release</b> on Friday"])
            await expect(cat.locator("#topic")).to_have_text("<b>release</b> on Friday")
            assert await cat.locator("header b, nav b").count() == 0


async def test_a_direct_conversation_between_two_pages_and_a_terminal_is_theirs_alone(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    url = f"{server.web_url}/?room=general&user="
    async with AsyncExitStack() as stack:
        await Chatter.open(stack, channel_to(server), user="cat", features=FEATURES)
        async with opened(browser, url + "ann") as ann, opened(browser, url + "bob") as bob:
            await live(ann)
            await live(bob)
            online = ann.get_by_role("complementary")
            await expect(online.get_by_role("button")).to_have_text(["bob", "cat"], timeout=WAIT_MS)
            await online.get_by_role("button", name="bob").click()
            await expect(ann.get_by_role("heading", level=1)).to_have_text("@bob")
            await live(ann)
            assert ann.url.endswith("room=%40ann%2Cbob")
            await post(ann, "psst, bob")
            # bob's list of rooms shows the conversation begun with him, marked new
            direct = bob.get_by_role("list", name="Direct").get_by_role("button", name="@ann")
            await expect(direct).to_have_class(re.compile("unread"), timeout=WAIT_MS)
            await direct.click()
            await expect(bob.get_by_role("heading", level=1)).to_have_text("@ann")
            await expect(direct).not_to_have_class(re.compile("unread"))
            await live(bob)
            await expect(line(bob, "psst, bob")).to_contain_text("ann", timeout=WAIT_MS)
            await post(bob, "hi ann")
            await expect(line(ann, "hi ann")).to_be_visible(timeout=WAIT_MS)
            directs = ann.get_by_role("list", name="Direct")
            await expect(directs.get_by_role("button")).to_have_text(["@bob"], timeout=WAIT_MS)

            # ann and cat's terminal client: bob may not read it, nor see it listed
            rooms = ann.get_by_role("navigation", name="Rooms")
            await rooms.get_by_role("button", name="#general").click()
            await live(ann)
            await ann.get_by_role("complementary").get_by_role("button", name="cat").click()
            await expect(ann.get_by_role("heading", level=1)).to_have_text("@cat")
            await live(ann)
            terminal = await PipedClient.start(server, "cat", "@ann,cat")
            stack.push_async_callback(terminal.finish)
            online = ann.get_by_role("complementary").get_by_role("button", name="cat")
            await expect(online).to_be_visible(timeout=WAIT_MS)  # in the conversation now
            await post(ann, "hello cat")
            await terminal.printed("[@ann,cat] ann: hello cat")
            await terminal.say("hello ann, from the terminal")
            await terminal.printed("Server Responding to hello ann, from the terminal")
            await expect(line(ann, "hello ann, from the terminal")).to_contain_text(
                "cat", timeout=WAIT_MS
            )
            await expect(directs.get_by_role("button")).to_have_text(
                ["@bob", "@cat"], timeout=WAIT_MS
            )
            await bob.reload()
            await live(bob)
            await expect(bob.get_by_role("list", name="Direct").get_by_role("button")).to_have_text(
                ["@ann"]
            )
        async with opened(browser, f"{server.web_url}/?user=bob&room=%40ann%2Ccat") as bob:
            await expect(bob.locator("#login").get_by_role("alert")).to_have_text(
                "You may not enter: @ann,cat is a direct conversation of others:"
                " only they may use it.",
                timeout=WAIT_MS,
            )
            assert await texts(bob) == []


async def test_each_action_works_by_keyboard_alone_at_phone_width(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=mobile", **PHONE) as ann:
        await live(ann)
        box = ann.get_by_role("textbox", name="Message")
        await expect(box).to_be_focused()
        await post(ann, "typed on a phone")
        mine = line(ann, "typed on a phone")
        await ann.keyboard.press("Shift+Tab")
        delete = mine.get_by_role("button", name="Delete", exact=True)
        await expect(delete).to_be_focused()
        assert float(await delete.evaluate("b => getComputedStyle(b.parentNode).opacity")) == 1
        await ann.keyboard.press("Shift+Tab")
        await ann.keyboard.press("Shift+Tab")
        await expect(mine.get_by_role("button", name="React", exact=True)).to_be_focused()
        await ann.keyboard.press("Enter")
        await expect(mine.get_by_role("button", name="👍")).to_be_focused()
        await ann.keyboard.press("Enter")
        await expect(mine.locator(".chip")).to_have_text("👍 1", timeout=WAIT_MS)
        await expect(mine.locator(".chip")).to_have_attribute("aria-pressed", "true")
        await box.focus()
        await ann.keyboard.press("ArrowUp")
        await ann.keyboard.press("Control+a")
        await ann.keyboard.type("typed on a phone, then fixed")
        await ann.keyboard.press("Enter")
        await expect(line(ann, "then fixed").locator(".edited")).to_be_visible(timeout=WAIT_MS)
        await expect(line(ann, "then fixed").locator(".chip")).to_have_text("👍 1")
        assert await ann.evaluate("document.scrollingElement.scrollWidth") <= 390


async def signed_in(page: Page, user: str, token: str) -> None:
    """Signs in on the page's form with a name and a token, and waits until live."""
    await page.get_by_label("Name").fill(user)
    await page.get_by_label("Token").fill(token)
    await page.get_by_label("Token").press("Enter")
    await live(page)


async def test_a_moderator_is_offered_delete_on_everyones_messages_and_the_server_agrees(
    server_process: Start, browser: Browser
) -> None:
    secret = "0123456789abcdef0123456789abcdef-the-page-secret"
    server = server_process("memory://", "--jwt-secret", secret, web=True)
    key = check_secret(secret)
    now = int(time.time())
    mia_token = jwt.encode(
        {"sub": "mia", "iat": now, "exp": now + 3600, "mod": ["gen*"]}, key, algorithm="HS256"
    )
    async with (
        opened(browser, f"{server.web_url}/") as ann,
        opened(browser, f"{server.web_url}/") as mia,
    ):
        await signed_in(ann, "ann", mint(key, "HS256", "ann"))
        await signed_in(mia, "mia", mia_token)
        await post(mia, "house rules: be kind")
        await post(ann, "something unkind")
        await expect(line(mia, "something unkind")).to_be_visible(timeout=WAIT_MS)
        await line(ann, "house rules").hover()
        tools = line(ann, "house rules").get_by_role("group", name="Message actions")
        assert await tools.get_by_role("button").all_inner_texts() == ["Reply", "React"]
        await act(mia, "something unkind", "Delete")
        for page in (ann, mia):
            await expect(page.locator("#messages li.deleted")).to_have_count(1, timeout=WAIT_MS)
        assert await texts(ann) == ["house rules: be kind", "message deleted"]


async def test_hostile_text_in_quotes_reactions_and_topics_is_shown_as_text_and_runs_none(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    hostile = '<img src=x onerror="window.ran = 1">'
    emoji = "<img/src=x/onerror=window.ran=3>"
    topic = "<script>window.ran = 4</script>"
    async with AsyncExitStack() as stack:
        eve = await Chatter.open(stack, channel_to(server), user="eve", features=FEATURES)
        async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
            await live(ann)
            root = await eve.say(hostile)
            await eve.say("a reply", reply_to=root.id)  # type: ignore[arg-type]
            react = MessageRequestAction.REACT
            await eve.say(emoji, action=react, target_id=root.id)  # type: ignore[arg-type]
            await eve.say(topic, action=MessageRequestAction.TOPIC)  # type: ignore[arg-type]
            await expect(ann.locator("#topic")).to_have_text(topic, timeout=WAIT_MS)
            await expect(line(ann, "a reply").locator(".quote")).to_have_text(f"↪ eve: {hostile}")
            await expect(line(ann, "<img src=x").locator(".chip")).to_have_text(f"{emoji} 1")
            await line(ann, "<img src=x").get_by_role("button", name="1 reply").click()
            thread = ann.get_by_role("region", name="Thread")
            await expect(thread.locator("li .text")).to_have_text([hostile, "a reply"])
            assert await ann.locator("body img, body script").count() == 0
            assert await ann.evaluate("window.ran") is None


async def test_what_happened_to_messages_while_a_page_was_away_shows_once_it_is_back(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    """The page's socket is cut and its catch-up held off while dan edits, reacts, deletes and
    sets the topic; back, the page shows each once, from the entries after the newest it saw."""
    server = server_process(web=True)
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    async with AsyncExitStack() as stack:
        dan = await Chatter.open(stack, channel_to(server), user="dan", features=FEATURES)
        draft = await dan.say("first draft")
        gone = await dan.say("soon gone")
        context = await browser.new_context()
        stack.push_async_callback(context.close)
        ann = await context.new_page()
        await ann.route_web_socket(re.compile("SendAndReceiveMessage"), through)
        await ann.goto(f"{server.web_url}/?user=ann&room=general")
        await live(ann)
        await ann.route("**/GetMessages", lambda route: route.abort())
        await sockets[-1].close()
        await expect(ann.get_by_role("status")).to_have_text("reconnecting…", timeout=WAIT_MS)
        await dan.say("final text", action=MessageRequestAction.EDIT, target_id=draft.id)  # type: ignore[arg-type]
        await dan.say("👍", action=MessageRequestAction.REACT, target_id=draft.id)  # type: ignore[arg-type]
        await dan.say("", action=MessageRequestAction.DELETE, target_id=gone.id)  # type: ignore[arg-type]
        await dan.say("said while ann was away")
        await dan.say("back soon", action=MessageRequestAction.TOPIC)  # type: ignore[arg-type]
        await ann.unroute("**/GetMessages")
        await live(ann)
        await expect(line(ann, "said while ann was away")).to_be_visible(timeout=WAIT_MS)
        assert await texts(ann) == ["final text", "message deleted", "said while ann was away"]
        await expect(line(ann, "final text").locator(".edited")).to_be_visible()
        await expect(line(ann, "final text").locator(".chip")).to_have_text("👍 1")
        await expect(ann.locator("#topic")).to_have_text("back soon")

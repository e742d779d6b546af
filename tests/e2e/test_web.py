"""The chat page in Chromium against real server processes, beside terminal, grpcio and Node
clients: every door of one server, one room."""

import asyncio
import json
import queue
import re
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from grpclib.client import Channel
from playwright.async_api import Browser, Page, expect

from bench.tutorial import generate
from chat.server.auth import check_secret
from chat.server.tokens import mint
from gen.grpc.chat import MessageReplyKind
from harness import ROOT, Chatter, PipedClient, ServerProcess, run_client
from harness.pages import WAIT_MS, line, live, opened, post

Start = Callable[..., ServerProcess]


async def texts(page: Page) -> list[str]:
    return await page.locator("#messages li[data-id] .text").all_inner_texts()


async def ids(page: Page) -> list[int]:
    values = await page.locator("#messages li[data-id]").evaluate_all(
        "nodes => nodes.map(node => node.dataset.id)"
    )
    return [int(value) for value in values]


async def test_two_pages_and_a_terminal_client_chat_in_one_room_both_ways(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    room = f"{server.web_url}/?room=lobby&user="
    async with opened(browser, room + "ann") as ann, opened(browser, room + "bob") as bob:
        await live(ann)
        await live(bob)
        cat = await PipedClient.start(server, "cat", "lobby")
        for page in (ann, bob):
            await expect(page.locator("#online li", has_text="cat")).to_be_visible(timeout=WAIT_MS)
        await post(ann, "hello from ann")
        await expect(line(bob, "hello from ann")).to_contain_text("ann", timeout=WAIT_MS)
        await cat.printed("[lobby] ann: hello from ann")
        await cat.say("hello from the terminal")
        await cat.printed("Server Responding to hello from the terminal")
        for page in (ann, bob):
            await expect(line(page, "hello from the terminal")).to_contain_text("cat")
        await post(bob, "hello from bob")
        await expect(line(ann, "hello from bob")).to_be_visible(timeout=WAIT_MS)
        await cat.printed("[lobby] bob: hello from bob")
        assert await cat.finish() == 0
        expected = ["hello from ann", "hello from the terminal", "hello from bob"]
        assert await texts(ann) == await texts(bob) == expected


async def test_reloading_a_page_resumes_with_no_gap_and_no_duplicate(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    async with AsyncExitStack() as stack:
        dan = await Chatter.open(stack, channel_to(server), user="dan")
        async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
            await live(ann)
            await dan.recv_kind(MessageReplyKind.JOIN)
            await dan.say("one")
            await expect(line(ann, "one")).to_be_visible(timeout=WAIT_MS)
            await post(ann, "two")
            reloaded = asyncio.ensure_future(ann.reload())
            assert (await dan.recv_kind(MessageReplyKind.LEAVE)).user == "ann"
            await dan.say("three")  # while the page is away
            await reloaded
            await live(ann)
            await dan.recv_kind(MessageReplyKind.JOIN)
            await dan.say("four")
            await expect(line(ann, "four")).to_be_visible(timeout=WAIT_MS)
            assert await texts(ann) == ["one", "two", "three", "four"]
            shown = await ids(ann)
            assert shown == sorted(set(shown))


async def test_a_page_shown_a_replaced_history_shows_the_new_one_from_its_start(
    server_process: Start, browser: Browser
) -> None:
    """A memory server restarts with a new epoch and ids from 1 again: the page, resuming with
    the old epoch, is given the new history whole and shows it, instead of taking its ids for
    ones it has seen."""
    server = server_process("memory://", web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        await post(ann, "in the old history")
        assert server.stop(signal.SIGTERM) == 0
        await expect(ann.get_by_role("status")).to_have_attribute(
            "data-state", "down", timeout=WAIT_MS
        )
        server.start()
        await live(ann)
        posted = run_client(["--server", server.address, "chat", "--user", "bob"], "new one\n")
        assert posted.returncode == 0, posted.stderr
        await expect(line(ann, "new one")).to_be_visible(timeout=WAIT_MS)
        assert (await texts(ann))[-1] == "new one"


async def test_a_server_restart_reconnects_the_page_and_sends_what_was_typed_meanwhile(
    server_process: Start, browser: Browser, tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path / 'chat.db'}", web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        await post(ann, "before the restart")
        assert server.stop(signal.SIGTERM) == 0
        status = ann.get_by_role("status")
        await expect(status).to_have_attribute("data-state", "down", timeout=WAIT_MS)
        box = ann.get_by_role("textbox", name="Message")
        await box.fill("typed while it was down")
        await box.press("Enter")
        await expect(line(ann, "typed while it was down")).to_have_attribute(
            "data-state", "pending"
        )
        server.start()
        await live(ann)
        await expect(line(ann, "typed while it was down")).to_have_attribute(
            "data-state", "sent", timeout=WAIT_MS
        )
        assert await texts(ann) == ["before the restart", "typed while it was down"]
    async with opened(browser, f"{server.web_url}/?user=bob&room=general") as bob:
        await live(bob)
        assert await texts(bob) == ["before the restart", "typed while it was down"]


async def test_a_token_protected_server_refuses_a_page_without_the_token(
    server_process: Start, browser: Browser
) -> None:
    server = server_process("memory://", "--token", "s3cret", web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        problem = ann.locator("#login").get_by_role("alert")
        await expect(problem).to_have_text(
            "This server needs a token: ask its operator for one.", timeout=WAIT_MS
        )
        assert await texts(ann) == []
        token = ann.get_by_label("Token")
        await expect(token).to_be_focused()
        hint = ann.locator(f"#{await token.get_attribute('aria-describedby')}")
        await expect(hint).to_contain_text("chat-server token --user NAME")
        await expect(hint).to_contain_text("just token --user NAME")
        await token.fill("wrong")
        await token.press("Enter")
        await expect(problem).to_have_text(
            "The server did not accept this token: the bearer token is not valid.",
            timeout=WAIT_MS,
        )
        await expect(ann.get_by_role("textbox", name="Message")).to_be_hidden()
        await token.fill("s3cret")
        await token.press("Enter")
        await live(ann)
        await post(ann, "with the token")


async def test_a_grpcio_client_and_a_page_see_each_others_messages_live(
    server_process: Start, browser: Browser, tmp_path: Path
) -> None:
    pb2, pb2_grpc = generate(tmp_path)
    server = server_process(web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        outgoing: queue.Queue[str | None] = queue.Queue()

        def requests() -> Iterator[Any]:
            while (text := outgoing.get()) is not None:
                yield pb2.MessageRequest(message=text)

        with grpc.insecure_channel(server.address) as channel:
            stub: Any = pb2_grpc.ChatServiceStub(channel)
            call = stub.SendAndReceiveMessage(
                requests(), metadata=[("chat-user", "gio")], timeout=30
            )
            replies = iter(call)

            def until(text: str) -> str:
                return str(next(r.message for r in replies if r.message == text))

            outgoing.put("hello from grpcio")
            await asyncio.to_thread(until, "Server Responding to hello from grpcio")
            await expect(line(ann, "hello from grpcio")).to_contain_text("gio", timeout=WAIT_MS)
            await post(ann, "hello from chromium")
            assert await asyncio.to_thread(until, "hello from chromium") == "hello from chromium"
            outgoing.put(None)
            assert list(replies) == []


def test_an_npm_grpc_web_client_under_node_gets_stats_history_and_a_status(
    server_process: Start, web_modules: Path, tmp_path: Path
) -> None:
    server = server_process(web=True)
    posted = ["--server", server.address, "chat", "--user", "ann", "--room", "dev"]
    assert run_client(posted, "first\nsecond\n").returncode == 0
    client = tmp_path / "client.mjs"
    source = ROOT / "web" / "test" / "grpc-web-client.ts"
    esbuild = [str(web_modules / ".bin" / "esbuild"), str(source), "--bundle", "--platform=node"]
    options = ["--format=esm", f"--outfile={client}", "--log-level=warning"]
    subprocess.run([*esbuild, *options], check=True, timeout=60)
    ran = subprocess.run(
        ["node", str(client), server.web_url, "dev"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(ran.stdout)
    assert result["numMessages"] == 2
    assert result["messages"] == [
        {"id": 1, "user": "ann", "text": "first"},
        {"id": 2, "user": "ann", "text": "second"},
    ]
    assert result["refused"]["code"] == 3  # INVALID_ARGUMENT
    assert "room" in result["refused"]["message"]


async def test_the_page_works_at_phone_width_by_keyboard_alone(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    phone = {"viewport": {"width": 360, "height": 640}, "has_touch": True}
    async with opened(browser, f"{server.web_url}/", **phone) as page:
        await expect(page.get_by_label("Name")).to_be_focused()
        await page.keyboard.type("ann")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Control+a")
        await page.keyboard.type("mobile")
        await page.keyboard.press("Enter")
        await live(page)
        await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
        await page.keyboard.type("typed on a phone")
        await page.keyboard.press("Enter")
        await expect(line(page, "typed on a phone")).to_have_attribute(
            "data-state", "sent", timeout=WAIT_MS
        )
        assert page.url.endswith("/?user=ann&room=mobile")
        width = await page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 360


async def test_the_rooms_are_listed_and_a_click_enters_one(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    posted = ["--server", server.address, "chat", "--user", "dan", "--room", "dev"]
    assert run_client(posted, "news in dev\n").returncode == 0
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        rooms = ann.get_by_role("navigation", name="Rooms")
        await rooms.get_by_role("button", name="#dev").click()
        await expect(ann.get_by_role("heading", name="#dev")).to_be_visible()
        await live(ann)
        await expect(line(ann, "news in dev")).to_contain_text("dan")
        await post(ann, "ann was here")
        assert ann.url.endswith("/?user=ann&room=dev")
    history = run_client(["--server", server.address, "messages", "--room", "dev"])
    assert [row.split("] ", 1)[1] for row in history.stdout.splitlines()] == [
        "dan: news in dev",
        "ann: ann was here",
    ]


async def test_the_page_shows_hostile_text_as_text_and_runs_none_of_it(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    hostile = '<img src=x onerror="window.ran = 1"><script>window.ran = 2</script>\x1b[2J\u202e'
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        posted = run_client(["--server", server.address, "chat", "--user", "eve"], hostile + "\n")
        assert posted.returncode == 0, posted.stderr
        await expect(line(ann, "<img src=x")).to_contain_text("eve", timeout=WAIT_MS)
        shown = await ann.locator("#messages li[data-id] .text").evaluate_all(
            "nodes => nodes.map(node => node.textContent)"
        )
        assert shown == [hostile]
        assert await ann.locator("#messages img, #messages script").count() == 0
        assert await ann.evaluate("window.ran") is None


PHONE = {"viewport": {"width": 390, "height": 844}}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
GAP = "log => log.scrollHeight - log.scrollTop - log.clientHeight"
"""How far the message log is scrolled from its newest line, in CSS pixels."""
AT_NEWEST = f"() => ({GAP})(document.getElementById('messages')) <= 1"


async def at_newest(page: Page) -> None:
    """Waits until the message log shows its newest line."""
    await page.wait_for_function(AT_NEWEST, timeout=WAIT_MS)


async def lines_tall(box: Any) -> float:
    """How many lines of text the message box is tall (its padding aside)."""
    tall = await box.evaluate(
        """box => {
            const style = getComputedStyle(box);
            const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
            return (box.clientHeight - padding) / parseFloat(style.lineHeight);
        }"""
    )
    return round(float(tall), 1)


def say_as(server: ServerProcess, user: str, *lines: str, room: str = "general") -> None:
    """`lines` posted by the terminal client as `user`, one after the other."""
    args = ["--server", server.address, "chat", "--user", user, "--room", room]
    posted = run_client(args, "".join(f"{text}\n" for text in lines))
    assert posted.returncode == 0, posted.stderr


async def test_the_message_box_keeps_one_line_with_many_online_and_grows_only_with_typing(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    say_as(server, "dan", *(f"line {number}" for number in range(40)))
    async with AsyncExitStack() as stack:
        for number in range(13):
            await Chatter.open(stack, channel_to(server), user=f"user{number:02}")
        async with opened(browser, f"{server.web_url}/?user=ann&room=general", **DESKTOP) as ann:
            await live(ann)
            await expect(ann.locator("#online li")).to_have_count(14, timeout=WAIT_MS)
            box = ann.get_by_role("textbox", name="Message")
            assert await lines_tall(box) == 1
            log = await ann.locator("#messages").bounding_box()
            assert log is not None and log["height"] > 0.8 * 800
            await at_newest(ann)
            await box.fill("one\ntwo\nthree")
            assert await lines_tall(box) == 3
            await box.fill("\n".join(f"row {number}" for number in range(20)))
            assert await lines_tall(box) == 5
            await box.press("Control+End")
            await box.press("Enter")
            await expect(line(ann, "row 19")).to_have_attribute(
                "data-state", "sent", timeout=WAIT_MS
            )
            assert await lines_tall(box) == 1
            await at_newest(ann)
            await ann.reload()
            await live(ann)
            await expect(ann.locator("#online li")).to_have_count(14, timeout=WAIT_MS)
            await at_newest(ann)
        async with opened(browser, f"{server.web_url}/?user=ann&room=general", **PHONE) as ann:
            await expect(ann.locator("#online li")).to_have_count(14, timeout=WAIT_MS)
            online = ann.get_by_role("complementary")
            scrolls = "node => node.scrollHeight > node.clientHeight"
            assert await online.evaluate(scrolls)
            assert await lines_tall(ann.get_by_role("textbox", name="Message")) == 1


async def test_the_log_follows_the_newest_line_at_phone_width_until_the_reader_scrolls_up(
    server_process: Start, browser: Browser, channel_to: Callable[..., Channel]
) -> None:
    server = server_process(web=True)
    say_as(
        server, "dan", *(f"an older line, long enough to wrap on a phone: {n}" for n in range(40))
    )
    async with AsyncExitStack() as stack:
        for number in range(5):
            await Chatter.open(stack, channel_to(server), user=f"user{number}")
        async with opened(browser, f"{server.web_url}/?user=ann&room=general", **PHONE) as ann:
            await live(ann)
            await expect(ann.locator("#online li")).to_have_count(6, timeout=WAIT_MS)
            await at_newest(ann)
            await post(ann, "my own line")
            await at_newest(ann)
            say_as(server, "dan", "while ann reads along")
            await expect(line(ann, "while ann reads along")).to_be_visible(timeout=WAIT_MS)
            await at_newest(ann)
            await ann.locator("#messages").hover()
            await ann.mouse.wheel(0, -100_000)  # to the oldest line, where it stays
            await ann.wait_for_function("() => document.getElementById('messages').scrollTop == 0")
            say_as(server, "dan", "while ann reads up")
            newer = ann.get_by_role("button", name="new messages")
            await expect(newer).to_be_visible(timeout=WAIT_MS)
            await expect(line(ann, "while ann reads up")).to_be_attached()
            assert await ann.locator("#messages").evaluate("log => log.scrollTop") == 0
            await newer.click()
            await at_newest(ann)
            await expect(newer).to_be_hidden()
            await expect(line(ann, "while ann reads up")).to_be_in_viewport()


async def test_a_line_typed_while_the_server_was_down_takes_its_place_in_the_servers_order(
    server_process: Start, browser: Browser, tmp_path: Path
) -> None:
    server = server_process(f"sqlite:///{tmp_path / 'chat.db'}", web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        await post(ann, "before the restart")
        assert server.stop(signal.SIGTERM) == 0
        await expect(ann.get_by_role("status")).to_have_attribute(
            "data-state", "down", timeout=WAIT_MS
        )
        box = ann.get_by_role("textbox", name="Message")
        await box.fill("typed while it was down")
        await box.press("Enter")
        # The page cannot catch up until dan's message is stored, so dan's comes first.
        await ann.route("**/GetMessages", lambda route: route.abort())
        server.start()
        say_as(server, "dan", "stored while ann was away")
        await ann.unroute("**/GetMessages")
        await expect(line(ann, "typed while it was down")).to_have_attribute(
            "data-state", "sent", timeout=WAIT_MS
        )
        expected = ["before the restart", "stored while ann was away", "typed while it was down"]
        assert await texts(ann) == expected
        shown = await ids(ann)
        assert shown == sorted(shown)
        await ann.reload()
        await live(ann)
        assert await texts(ann) == expected


async def test_an_action_shows_as_the_terminal_shows_it(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        cat = await PipedClient.start(server, "cat", "general")
        await expect(ann.locator("#online li", has_text="cat")).to_be_visible(timeout=WAIT_MS)
        box = ann.get_by_role("textbox", name="Message")
        await box.fill("/me waves")
        await box.press("Enter")
        await expect(line(ann, "* ann waves")).to_have_attribute(
            "data-state", "sent", timeout=WAIT_MS
        )
        await cat.printed("[general] * ann waves")
        await cat.say("/me nods")
        await expect(line(ann, "* cat nods")).to_be_visible(timeout=WAIT_MS)
        assert await cat.finish() == 0
        assert await texts(ann) == ["* ann waves", "* cat nods"]
        assert await ann.locator("#messages").get_by_text("/me").count() == 0


async def test_a_page_says_it_is_reconnecting_and_greys_who_was_online(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        online = ann.locator("#online")
        await expect(online.get_by_text("ann")).to_be_visible(timeout=WAIT_MS)
        await expect(online).not_to_have_class(re.compile("stale"))
        assert server.stop(signal.SIGTERM) == 0
        await expect(ann.get_by_role("status")).to_have_text("reconnecting…", timeout=WAIT_MS)
        await expect(online).to_have_class(re.compile("stale"))
        assert float(await online.evaluate("list => getComputedStyle(list).opacity")) < 1
        server.start()
        await live(ann)
        await expect(online).not_to_have_class(re.compile("stale"), timeout=WAIT_MS)


async def test_an_empty_room_says_so_until_its_first_message(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    async with opened(browser, f"{server.web_url}/?user=ann&room=quiet") as ann:
        await live(ann)
        empty = ann.get_by_text("no messages yet")
        await expect(empty).to_be_visible()
        await post(ann, "first words")
        await expect(empty).to_be_hidden()


async def test_a_bad_room_name_is_refused_with_the_rule_and_a_forbidden_one_in_place(
    server_process: Start, browser: Browser
) -> None:
    secret = "0123456789abcdef0123456789abcdef-the-page-secret"
    server = server_process("memory://", "--jwt-secret", secret, web=True)
    ann_token = mint(check_secret(secret), "HS256", "ann", ["general", "team-*"])
    async with opened(browser, f"{server.web_url}/") as ann:
        await ann.get_by_label("Name").fill("ann")
        await ann.get_by_label("Token").fill(ann_token)
        await ann.get_by_label("Token").press("Enter")
        await live(ann)
        url = ann.url
        rooms = ann.get_by_role("navigation", name="Rooms")
        other = rooms.get_by_label("Other room")
        problem = rooms.get_by_role("alert")
        await other.fill("no spaces")
        await other.press("Enter")
        await expect(problem).to_have_text(
            "A room is 1-64 characters of A-Z a-z 0-9 _ . - (no spaces)."
        )
        await expect(other).to_have_attribute("aria-invalid", "true")
        await other.fill("ops")
        await other.press("Enter")
        await expect(problem).to_have_text(
            "You may not enter #ops: your token does not allow room 'ops'"
            " (it allows: general, team-*).",
            timeout=WAIT_MS,
        )
        await expect(other).to_be_focused()
        assert await rooms.get_by_role("button").all_inner_texts() == ["#general", "Go"]
        await expect(ann.get_by_role("heading", level=1)).to_have_text("#general")
        await expect(ann.get_by_role("status")).to_have_text("live")
        assert ann.url == url
        await other.fill("team-red")
        await other.press("Enter")
        await expect(ann.get_by_role("heading", name="#team-red")).to_be_visible()
        await live(ann)
        await expect(problem).to_be_hidden()


async def test_a_page_with_someone_elses_token_goes_back_to_the_form_with_the_reason(
    server_process: Start, browser: Browser
) -> None:
    secret = "0123456789abcdef0123456789abcdef-the-page-secret"
    server = server_process("memory://", "--jwt-secret", secret, web=True)
    ann_token = mint(check_secret(secret), "HS256", "ann")
    async with opened(browser, f"{server.web_url}/") as page:
        await page.get_by_label("Name").fill("bob")
        await page.get_by_label("Token").fill(ann_token)
        await page.get_by_label("Token").press("Enter")
        problem = page.locator("#login").get_by_role("alert")
        await expect(problem).to_have_text(
            "Your token does not allow this: chat-user 'bob' is not you:"
            " your token is for user 'ann'.",
            timeout=WAIT_MS,
        )
        await expect(page.get_by_role("textbox", name="Message")).to_be_hidden()
        await expect(page.get_by_label("Name")).to_have_value("bob")
        await page.get_by_label("Name").fill("ann")
        await page.get_by_label("Name").press("Enter")
        await live(page)
        await post(page, "ann, with her own token")


async def test_switching_rooms_is_a_step_in_the_browsers_history(
    server_process: Start, browser: Browser
) -> None:
    server = server_process(web=True)
    say_as(server, "dan", "news in dev", room="dev")
    async with opened(browser, f"{server.web_url}/?user=ann&room=general") as ann:
        await live(ann)
        rooms = ann.get_by_role("navigation", name="Rooms")
        await rooms.get_by_role("button", name="#dev").click()
        await expect(line(ann, "news in dev")).to_be_visible(timeout=WAIT_MS)
        assert ann.url.endswith("/?user=ann&room=dev")
        await ann.go_back()
        await expect(ann.get_by_role("heading", level=1)).to_have_text("#general")
        assert ann.url.endswith("/?user=ann&room=general")
        await live(ann)
        await expect(line(ann, "news in dev")).to_have_count(0)
        await ann.go_forward()
        await expect(ann.get_by_role("heading", level=1)).to_have_text("#dev")
        await expect(line(ann, "news in dev")).to_be_visible(timeout=WAIT_MS)


async def test_each_day_of_messages_has_a_divider_with_its_date(
    server_process: Start, browser: Browser, tmp_path: Path
) -> None:
    database = tmp_path / "chat.db"
    server = server_process(f"sqlite:///{database}", web=True)
    assert server.stop(signal.SIGTERM) == 0
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "INSERT INTO messages (room, user, text, sent_at) VALUES (?, ?, ?, ?)",
            ("general", "dan", "said yesterday", int(yesterday.timestamp() * 1_000_000)),
        )
    server.start()
    utc = {"timezone_id": "UTC", "locale": "en-US"}
    async with opened(browser, f"{server.web_url}/?user=ann&room=general", **utc) as ann:
        await live(ann)
        await post(ann, "said today")
        await post(ann, "said today again")
        days = ann.locator("#messages li.day")
        dates = [f"{day:%A, %B} {day.day}, {day.year}" for day in (yesterday, datetime.now(UTC))]
        await expect(days).to_have_text(dates)
        order = await ann.locator("#messages li").evaluate_all(
            "nodes => nodes.map(node => node.classList.contains('day') ? 'day' : node.dataset.id)"
        )
        assert order == ["day", "1", "day", "2", "3"]

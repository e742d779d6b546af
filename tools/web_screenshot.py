"""Writes the README's pictures of the page, photographed by the browser the tests drive (Debian's
chromium) against a real server: docs/web.png, two pages and a terminal client in one room
(`--scene room`), and docs/web-conversation.png, a conversation with a topic, an open thread,
reactions and an edited message (`--scene conversation`)."""

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from grpclib.client import Channel
from playwright.async_api import Browser, Page, async_playwright, expect

from gen.grpc.chat import MessageReplyKind, MessageRequestAction
from harness import CHROMIUM, CHROMIUM_ARGS, ROOT, Chatter, ServerProcess, run_client

WAIT_MS = 10_000
CONVERSATION = [
    ("ann", "morning all! the web page is up"),
    ("bob", "nice, no install at all?"),
    ("ann", "just the server: gRPC on 50051, the page on 8080"),
]


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")
    sent = page.locator("#messages li[data-state=sent]", has_text=text)
    await expect(sent).to_be_visible(timeout=WAIT_MS)


async def line_action(page: Page, text: str, action: str) -> None:
    """Points at the line of `text` and presses one of its actions (Reply, React, Edit)."""
    shown = page.locator("#messages li.line", has=page.locator(".text", has_text=text))
    await shown.hover()
    await shown.get_by_role("button", name=action, exact=True).click()


async def open_page(browser: Browser, url: str, width: int, height: int) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_role("status")).to_have_text("live", timeout=WAIT_MS)
    return page


async def photograph_conversation(out: Path) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(Path(workdir) / "server.log", "memory://", web=True).start()
        try:
            async with AsyncExitStack() as stack, async_playwright() as playwright:
                channel = Channel("127.0.0.1", server.port)
                stack.callback(channel.close)
                features = "edits,reactions,replies,topics"
                dan = await Chatter.open(stack, channel, user="dan", features=features)
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                stack.push_async_callback(browser.close)
                url = f"{server.web_url}/?room=general&user="
                ann = await open_page(browser, url + "ann", 1100, 620)
                bob = await open_page(browser, url + "bob", 1100, 620)
                topic = "Friday's release: notes, threads, reactions"
                box = ann.get_by_role("textbox", name="Message")
                await box.fill(f"/topic {topic}")
                await box.press("Enter")
                await expect(ann.locator("#topic")).to_have_text(topic, timeout=WAIT_MS)
                await dan.say("morning! the release is on Friday")
                question = "can the page's threads go in it?"
                await say(ann, question)
                await line_action(bob, question, "Reply")
                await say(bob, "yes: the server side is done")
                root = await dan.recv_kind(MessageReplyKind.CHAT)
                while root.message != question:
                    root = await dan.recv_kind(MessageReplyKind.CHAT)
                await dan.say("and the tests pass on both paths", reply_to=root.id)  # type: ignore[arg-type]
                await dan.say("🎉", action=MessageRequestAction.REACT, target_id=root.id)  # type: ignore[arg-type]
                await line_action(bob, question, "React")
                await bob.get_by_role("button", name="👍").click()
                await say(ann, "I'll write teh notes")
                await line_action(ann, "teh notes", "Edit")
                await box.fill("I'll write the release notes")
                await box.press("Enter")
                edited = ann.locator("#messages .edited")
                await expect(edited).to_be_visible(timeout=WAIT_MS)
                await line_action(bob, "the release notes", "React")
                await bob.get_by_role("button", name="❤️").click()
                chips = ann.locator("#messages .chip")
                await expect(chips).to_have_text(["🎉 1", "👍 1", "❤️ 1"], timeout=WAIT_MS)
                await ann.locator("#messages").get_by_role("button", name="2 replies").click()
                thread = ann.get_by_role("region", name="Thread")
                await expect(thread.locator("li")).to_have_count(3, timeout=WAIT_MS)
                await box.focus()
                await ann.screenshot(path=out)
        finally:
            server.stop()


async def photograph(out: Path) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(Path(workdir) / "server.log", "memory://", web=True).start()
        try:
            dev = ["--server", server.address, "chat", "--user", "dan", "--room", "dev"]
            await asyncio.to_thread(run_client, dev, "the dev room has news\n")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                viewport = {"width": 960, "height": 540}
                pages = {}
                for user in ("ann", "bob"):
                    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                    pages[user] = await context.new_page()
                    await pages[user].goto(f"{server.web_url}/?user={user}&room=general")
                    await expect(pages[user].get_by_role("status")).to_have_text(
                        "live", timeout=WAIT_MS
                    )
                for user, text in CONVERSATION:
                    await say(pages[user], text)
                args = ["--server", server.address, "chat", "--user", "cat"]
                await asyncio.to_thread(run_client, args, "hello from the terminal\n")
                await say(pages["ann"], "welcome, cat")
                await pages["ann"].screenshot(path=out)
                await browser.close()
        finally:
            server.stop()


SCENES: dict[str, tuple[Callable[[Path], Coroutine[Any, Any, None]], str]] = {
    "room": (photograph, "web.png"),
    "conversation": (photograph_conversation, "web-conversation.png"),
}
"""Each picture: what it photographs, and its file in docs/."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", choices=sorted(SCENES), default="room")
    parser.add_argument(
        "--out", type=Path, help="default: docs/web.png or docs/web-conversation.png"
    )
    args = parser.parse_args()
    take, name = SCENES[args.scene]
    out = args.out or ROOT / "docs" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(take(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

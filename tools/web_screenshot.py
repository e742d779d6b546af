"""Writes docs/web.png, the README's picture of the page: a real server, two pages and a terminal
client in one room, photographed by the browser the tests drive (Debian's chromium)."""

import argparse
import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from harness import CHROMIUM, CHROMIUM_ARGS, ROOT, ServerProcess, run_client

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "web.png")
    out = parser.parse_args().out
    out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(photograph(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

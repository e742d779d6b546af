"""The chat page in Chromium, as the page tests drive it: a page of its own, its state, its log's
lines, and a line typed and sent."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from harness.calls import REPLY_TIMEOUT

WAIT_MS = REPLY_TIMEOUT * 1000
"""How long a page test waits for what it expects, in Playwright's milliseconds."""


@asynccontextmanager
async def opened(browser: Browser, url: str, **context: Any) -> AsyncIterator[Page]:
    """A page of its own (fresh cookies and storage) at `url`, closed at the end."""
    browser_context = await browser.new_context(**context)
    try:
        page = await browser_context.new_page()
        await page.goto(url)
        yield page
    finally:
        await browser_context.close()


async def live(page: Page) -> None:
    """Returns once the page says its stream is live."""
    await expect(page.get_by_role("status")).to_have_text("live", timeout=WAIT_MS)


def line(page: Page, text: str) -> Locator:
    """The log's line whose text holds `text`."""
    return page.locator("#messages li.line", has=page.locator(".text", has_text=text))


async def post(page: Page, text: str) -> None:
    """Types `text` in the message box, presses Enter, and waits until the server has it."""
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")
    await expect(line(page, text)).to_have_attribute("data-state", "sent", timeout=WAIT_MS)

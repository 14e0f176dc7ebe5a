"""Real-browser fixtures: Playwright driving Debian's Chromium.

Playwright's own browser download is not reachable here, so the tests drive the
``chromium`` package at ``/usr/bin/chromium`` (``executable_path``). Without it
the fixture FAILS with a sentence naming the package; it never skips, so a
machine that lacks the browser cannot pass the browser tests by not running them
(``make test`` installs the package first where apt-get may).

``browser`` is one Chromium per test session (about a second to start).
``launch()`` gives it a fresh temporary user-data dir that Playwright deletes at
close, and each page gets a context of its own: no cookie, storage or cache
crosses from one test, or one page, to another.
``page_factory`` makes pages in a light or dark color scheme and any viewport,
closes them after the test, and fails the test on any uncaught script error
they saw: a broken script is a broken page even when the assertions pass.

Register in a conftest with ``from support.browser import browser, page_factory  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Response, async_playwright
from playwright.async_api import Error as PlaywrightError

from support.secret_values import SECRET_VALUES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

CHROMIUM = "/usr/bin/chromium"
MISSING = "Chromium is missing: install Debian's `chromium` package (apt-get install chromium)"
#: the flags the issue fixes: the new headless mode, no sandbox (root in CI), and
#: no traffic of the browser's own (updates, sync, QUIC probes, first-run pages)
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: where screenshots go (gitignored); the README shows two of them
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

Scheme = Literal["light", "dark"]


class PageFactory(Protocol):
    def __call__(
        self,
        *,
        color_scheme: Scheme = "light",
        width: int = 1280,
        height: int = 800,
        base_url: str | None = None,
    ) -> Awaitable[Page]: ...


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(MISSING, pytrace=False)
    async with async_playwright() as pw:
        # headless=True makes Playwright add its own --headless; ours comes later and wins.
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page_factory(browser: Browser) -> AsyncIterator[PageFactory]:
    contexts: list[BrowserContext] = []
    errors: list[str] = []
    leaks: list[str] = []
    reads: list[asyncio.Task[None]] = []

    async def search(response: Response) -> None:
        # Every page, fragment and JSON body the browser got, searched for the test
        # secrets (issue 12: no Secret value in any page). SSE streams never end:
        # the server tests' SecretGuard reads those.
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith(("text/html", "application/json", "text/plain")):
            return
        try:
            body = await response.text()
        except PlaywrightError:  # a body the page let go of before it was read
            return
        leaks.extend(f"{response.url}: {v}" for v in SECRET_VALUES if v in body)

    async def new_page(
        *,
        color_scheme: Scheme = "light",
        width: int = 1280,
        height: int = 800,
        base_url: str | None = None,
    ) -> Page:
        ctx = await browser.new_context(
            color_scheme=color_scheme,
            viewport={"width": width, "height": height},
            base_url=base_url,
            reduced_motion="reduce",
        )
        contexts.append(ctx)
        page = await ctx.new_page()
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        # The server's Content-Security-Policy: whatever it blocks is a broken page.
        page.on(
            "console",
            lambda m: (
                errors.append(f"{page.url}: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text
                else None
            ),
        )
        page.on("response", lambda r: reads.append(asyncio.ensure_future(search(r))))
        return page

    yield new_page
    await asyncio.gather(*reads, return_exceptions=True)
    for ctx in contexts:
        await ctx.close()
    assert not leaks, f"a test secret value reached the browser: {leaks}"
    assert not errors, f"uncaught script errors in the page: {errors}"


async def ui_login(page: Page, base_url: str, username: str, password: str, next: str = "") -> None:
    """Log in through the login page as a person would, and wait to land on ``next``
    (the application list by default)."""
    target = next or "/applications"
    await page.goto(f"{base_url}/login?next={target}")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await page.wait_for_url(re.compile(re.escape(base_url + target.split("?")[0])))


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save ``test-artifacts/ui/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path

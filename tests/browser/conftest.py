"""Browser tests: Debian's Chromium, headless, driven by Playwright's sync API, against the whole real stack.

Checkout may send a customer back only to an allowed origin, and the test stack allows `http://127.0.0.1`
(no port). So the browser opens the pages at `http://127.0.0.1/...` and every request to that origin is
carried, unchanged, to the gateway's real port (`route.fetch`): the pages, the API calls and Stripe's
redirect back after paying all reach the real gateway, on the origin Checkout accepts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, MISSING
from tests.support.gateway import token
from tests.support.purchase_stack import PurchaseStack, purchase_stack

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "artifacts" / "screenshots"
PAGE_ORIGIN = "http://127.0.0.1"  # the origin the stack's gateway allows Checkout to return to
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
EXPECT_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_sync.Browser]:
    """Per module: Playwright's sync API runs an event loop in this thread while it is open, which other
    modules' `asyncio.run` must not meet."""
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        playwright_sync.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("browser"), subscriptions=True) as running:
        yield running


@dataclass
class Session:
    """One browser context on the stack: its page, what went wrong in its console, what the API answered."""

    page: playwright_sync.Page
    console_errors: list[str] = field(default_factory=list)
    responses: list[tuple[str, int]] = field(default_factory=list)

    def open(self, path: str, user: str, roles: tuple[str, ...] = ("user",)) -> None:
        """Open a page as the host product would: the user's token once, in the URL fragment."""
        self.page.goto(f"{PAGE_ORIGIN}{path}#token={token(user, roles, ttl_seconds=3600)}")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def api_responses(self, prefix: str) -> list[tuple[str, int]]:
        return [(url, status) for url, status in self.responses if urlsplit(url).path.startswith(prefix)]


def _forward_to(gateway_url: str) -> Callable[[playwright_sync.Route], None]:
    def forward(route: playwright_sync.Route) -> None:
        parts = urlsplit(route.request.url)
        target = gateway_url + parts.path + (f"?{parts.query}" if parts.query else "")
        route.fulfill(response=route.fetch(url=target, max_redirects=0))

    return forward


@pytest.fixture
def session(browser: playwright_sync.Browser, stack: PurchaseStack) -> Iterator[Session]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    context.route(lambda url: urlsplit(url).netloc == "127.0.0.1", _forward_to(stack.gateway.url))
    page = context.new_page()
    opened = Session(page)
    page.on("console", lambda message: opened.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: opened.console_errors.append(f"uncaught: {error}"))
    page.on("response", lambda response: opened.responses.append((response.url, response.status)))
    try:
        yield opened
    finally:
        # A test may end while the page still loads something: stop forwarding first, so that a
        # request still in flight when the context closes is dropped rather than reported as an error.
        context.unroute_all(behavior="ignoreErrors")
        context.close()


@pytest.fixture
def user_id() -> str:
    return f"web-{uuid.uuid4().hex[:12]}"

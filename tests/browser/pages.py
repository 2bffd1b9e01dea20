"""What a person does on the pages, as Playwright steps shared by the browser tests."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import PAGE_ORIGIN

GOOD_CARD = "4242 4242 4242 4242"
# What Chromium itself logs when a response is an HTTP error: expected only where a test provokes one.
RESOURCE_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")


def pay_on_hosted_page(page: Page, sandbox_url: str, card: str = GOOD_CARD) -> None:
    """On Stripe's (the sandbox's) hosted checkout page: fill the card form, submit, come back to /billing."""
    page.wait_for_url(re.compile("^" + re.escape(sandbox_url)))
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiry").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Test Buyer")
    page.locator("#submit").click()
    page.wait_for_url(re.compile("^" + re.escape(PAGE_ORIGIN) + "/billing"))


def dismiss_modal(page: Page, heading: str, button: str = "OK") -> None:
    modal = page.locator("#modal")
    expect(modal.locator("h2")).to_have_text(heading)
    modal.get_by_role("button", name=button, exact=True).click()
    expect(modal).to_be_hidden()


def unexpected_console_errors(errors: list[str], allowed_statuses: tuple[int, ...] = ()) -> list[str]:
    """The console errors, less Chromium's own line for each HTTP error status the test provoked on purpose."""
    left = []
    for text in errors:
        match = RESOURCE_ERROR.match(text)
        if match and int(match.group(1)) in allowed_statuses:
            continue
        left.append(text)
    return left

"""The user's billing page in a real browser, against the whole real stack (Stripe sandbox included)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PAGE_ORIGIN, PHONE, Session
from tests.browser.pages import dismiss_modal, pay_on_hosted_page, unexpected_console_errors
from tests.support.gateway import token
from tests.support.purchase_stack import PurchaseStack

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_a_user_buys_credits_on_the_hosted_page_and_sees_the_new_balance(
    session: Session, stack: PurchaseStack, user_id: str
) -> None:
    page = session.page
    session.open("/billing", user_id)
    expect(page.locator("#signed-in-as")).to_contain_text(user_id)
    assert "token" not in page.url, "the token stays out of the address bar"
    expect(page.locator("#balance")).to_have_text("0")
    expect(page.locator("#no-subscriptions")).to_be_visible()

    page.locator('button[data-package="credits-100"]').click()
    pay_on_hosted_page(page, stack.sandbox.url)

    dismiss_modal(page, "Thank you")
    expect(page).to_have_url(f"{PAGE_ORIGIN}/billing")
    expect(page.locator("#balance")).to_have_text("100")
    payments = page.locator("#payments-table tbody tr")
    expect(payments).to_have_count(1)
    expect(payments.first.locator(".badge")).to_have_text("Succeeded")
    expect(payments.first.get_by_role("link", name="Receipt")).to_have_attribute("href", re.compile("^http"))
    expect(page.locator("#ledger-table tbody tr").first).to_contain_text("+100")
    session.screenshot("billing-desktop")
    page.set_viewport_size(PHONE)
    expect(page.locator("#balance")).to_be_visible()
    session.screenshot("billing-phone")
    assert unexpected_console_errors(session.console_errors) == []


def test_a_user_subscribes_then_pauses_resumes_and_cancels(
    session: Session, stack: PurchaseStack, user_id: str
) -> None:
    page = session.page
    session.open("/billing", user_id)
    page.locator('button[data-plan="starter"]').click()
    pay_on_hosted_page(page, stack.sandbox.url)
    dismiss_modal(page, "Thank you")

    card = page.locator('.subscription[data-plan="starter"]')
    expect(card.locator(".badge")).to_have_text("Active")
    expect(card.locator(".sub-state")).to_contain_text("Renews on")
    expect(page.locator("#balance")).to_have_text("1,000")

    card.get_by_role("button", name="Pause").click()
    modal = page.locator("#modal")
    expect(modal.get_by_label("While paused")).to_be_focused()
    modal.get_by_role("button", name="Pause payments").click()
    expect(modal).to_be_hidden()
    expect(card.locator(".badge")).to_have_text("Paused")
    expect(card.locator(".sub-state")).to_have_text("Payments paused until you resume them.")

    card.get_by_role("button", name="Resume").click()
    modal.get_by_role("button", name="Resume payments").click()
    expect(card.locator(".badge")).to_have_text("Active")
    expect(card.locator(".sub-state")).to_contain_text("Renews on")

    card.get_by_role("button", name="Cancel").click()
    modal.get_by_label("Why are you leaving? (optional)").fill("Trying the browser tests")
    modal.get_by_role("button", name="Cancel subscription").click()
    expect(card.locator(".sub-state")).to_contain_text("Cancels at the end of the period")

    card.get_by_role("button", name="Keep subscription").click()
    modal.get_by_role("button", name="Keep subscription").click()
    expect(card.locator(".sub-state")).to_contain_text("Renews on")

    card.get_by_role("button", name="Cancel").click()
    modal.get_by_label("When").select_option("false")
    modal.get_by_role("button", name="Cancel subscription").click()
    expect(card.locator(".badge")).to_have_text("Canceled")
    expect(card.get_by_role("button")).to_have_count(0)
    assert unexpected_console_errors(session.console_errors) == []


def test_the_modal_traps_focus_escape_closes_it_and_the_portal_opens(
    session: Session, stack: PurchaseStack, user_id: str
) -> None:
    page = session.page
    # Back from a checkout the user gave up: the page says so in the modal.
    page.goto(f"{PAGE_ORIGIN}/billing?checkout=cancel#token={token(user_id, ('user',), ttl_seconds=3600)}")
    modal = page.locator("#modal")
    expect(modal.locator("h2")).to_have_text("Checkout canceled")
    ok = modal.get_by_role("button", name="OK")
    expect(ok).to_be_focused()
    page.keyboard.press("Tab")
    expect(ok).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(ok).to_be_focused()
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    expect(page).to_have_url(f"{PAGE_ORIGIN}/billing")

    portal = page.get_by_role("button", name="Manage payment methods and invoices")
    portal.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("^" + re.escape(stack.sandbox.url) + "/billing_portal/"))
    page.get_by_role("link", name="Return").click()
    page.wait_for_url(f"{PAGE_ORIGIN}/billing")
    expect(page.locator("#balance")).to_have_text("0")
    assert unexpected_console_errors(session.console_errors) == []


def test_without_a_token_the_modal_asks_to_sign_in_again(session: Session) -> None:
    page = session.page
    page.goto(f"{PAGE_ORIGIN}/billing")
    dismiss_modal(page, "Please sign in again", button="Close")
    assert session.api_responses("/api/") == [], "no call without a token"
    assert unexpected_console_errors(session.console_errors) == []


def test_a_server_error_shows_the_problem_in_the_modal(session: Session, stack: PurchaseStack, user_id: str) -> None:
    assert stack.subscriptions is not None
    page = session.page
    session.open("/billing", user_id)
    subscribe = page.locator('button[data-plan="starter"]')
    expect(subscribe).to_be_enabled()
    stack.subscriptions.kill()
    try:
        subscribe.click()
        modal = page.locator("#modal")
        expect(modal.locator("h2")).to_have_text("A service is temporarily unavailable")
        expect(modal).to_contain_text("try again")
        request_id = modal.locator("#modal-request-id")
        expect(request_id).to_have_text(re.compile(r"^[A-Za-z0-9_.:-]{8,}$"))
        assert ("/api/stripe/create-checkout-session", 503) in [
            (url.removeprefix(PAGE_ORIGIN), status) for url, status in session.responses
        ]
        assert "Traceback" not in modal.inner_text()
        modal.get_by_role("button", name="Close").click()
        expect(modal).to_be_hidden()
        expect(subscribe).to_be_enabled()
    finally:
        stack.subscriptions.start_again()
    assert unexpected_console_errors(session.console_errors, allowed_statuses=(503,)) == []

"""The admin dashboard in a real browser: figures, transactions, a refund, and refusal for non-admins.

Written against the admin endpoints' contract (financial dashboard, transactions, subscriptions,
ledger transfers, webhook events, audit log).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Session
from tests.browser.pages import unexpected_console_errors
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ADMIN = ("user", "admin")


def test_an_admin_sees_a_purchase_refunds_it_and_sees_the_figures_change(
    session: Session, stack: PurchaseStack, user_id: str
) -> None:
    bought = stack.buy(user_id)
    assert pay_on_hosted_page(stack, bought["url"], "4242 4242 4242 4242").paid
    wait_for(lambda: stack.balance(user_id) == 100, "the purchase's credits")

    page = session.page
    session.open("/admin", "ops-admin", ADMIN)
    row = page.locator("#transactions-table tbody tr", has_text=user_id)
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Succeeded")
    expect(page.locator("#gross-usd .figure-value")).to_have_text("$5.00")
    expect(page.locator("#refunds-usd .figure-value")).to_have_text("$0.00")
    expect(page.locator("#revenue-chart rect.bar.gross")).to_have_count(1)
    session.screenshot("admin-desktop")

    page.get_by_label("User id").first.fill(user_id)
    page.get_by_role("button", name="Show balance").click()
    expect(page.locator("#user-balance")).to_have_text("100")

    row.get_by_role("button", name="Refund").click()
    modal = page.locator("#modal")
    expect(modal.locator("h2")).to_have_text("Refund this payment?")
    modal.get_by_label("Amount in minor units (USD cents)").fill("4.5")
    modal.get_by_role("button", name="Refund", exact=True).click()
    expect(modal.get_by_text("Enter a whole number, without decimals or signs.")).to_be_visible()
    expect(modal.get_by_label("Amount in minor units (USD cents)")).to_have_attribute("aria-invalid", "true")
    modal.get_by_label("Amount in minor units (USD cents)").fill("")
    modal.get_by_role("button", name="Refund", exact=True).click()
    expect(modal.locator("h2")).to_have_text("Refund issued")
    modal.get_by_role("button", name="OK").click()

    expect(page.locator("#user-balance")).to_have_text("0")
    expect(page.locator("#refunds-usd .figure-value")).to_have_text("$5.00")
    expect(page.locator("#net-usd .figure-value")).to_have_text("$0.00")
    expect(page.locator("#transactions-table tbody tr", has_text="Refund").first).to_contain_text(user_id)

    page.set_viewport_size(PHONE)
    expect(page.locator("#figures")).to_be_visible()
    session.screenshot("admin-phone")
    assert unexpected_console_errors(session.console_errors) == []


def test_a_non_admin_gets_no_admin_data(session: Session, user_id: str) -> None:
    page = session.page
    session.open("/admin", user_id)
    modal = page.locator("#modal")
    expect(modal.locator("h2")).to_have_text("Access denied")
    expect(modal).to_contain_text("Admin access is needed")
    page.wait_for_load_state("networkidle")
    admin_responses = session.api_responses("/api/admin/")
    assert admin_responses, "the page asked the server, which refused"
    assert {status for _, status in admin_responses} == {403}, admin_responses
    expect(page.locator("#transactions-table tbody tr")).to_have_count(0)
    assert unexpected_console_errors(session.console_errors, allowed_statuses=(403,)) == []

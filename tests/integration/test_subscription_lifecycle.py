"""Subscriptions end to end: real processes on PostgreSQL, the gateway, the Stripe sandbox with test clocks.

A user subscribes through the gateway and pays on Stripe's hosted page; the
test moves the customer's test clock; Stripe (the sandbox) bills each period
and sends its events to the gateway; the Subscriptions service keeps its state
and grants each paid period's credits through the Credits service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from subscriptions_svc.plans import DEFAULT_PLANS, load_plans
from tests.support.purchase_stack import PurchaseStack, purchase_stack, wait_for
from tests.support.subscriptions import DAY, GOOD_CARD, SubscriptionDriver

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]
PLANS = load_plans(DEFAULT_PLANS)
STARTER = PLANS.plan("starter")
PRO = PLANS.plan("pro")
assert STARTER is not None
assert PRO is not None
HOUR = 60 * 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("subscriptions"), subscriptions=True) as running:
        yield running


@pytest.fixture
def driver(stack: PurchaseStack) -> Iterator[SubscriptionDriver]:
    running = SubscriptionDriver(stack)
    yield running
    running.close()


def new_user() -> str:
    return f"sub-user-{uuid.uuid4().hex[:10]}"


def past_period_end(driver: SubscriptionDriver, sub: dict[str, Any], clock: str, *, extra: int = HOUR) -> None:
    """Move the clock just past the end of the subscription's current period, as Stripe has it."""
    stripe_sub = driver.stripe_subscription(sub)
    end = int(stripe_sub["items"]["data"][0]["current_period_end"])
    now = int(driver.stack.stripe.v1.test_helpers.test_clocks.retrieve(clock).frozen_time)
    driver.advance(clock, end - now + extra)


def test_checkout_then_three_renewals_grant_four_periods_and_a_void_pause_grants_none(
    driver: SubscriptionDriver,
) -> None:
    user = new_user()
    sub = driver.subscribe(user)
    assert sub["plan_id"] == "starter"
    clock = driver.clock_of(sub)
    driver.settle()
    for _ in range(3):
        past_period_end(driver, sub, clock)
    sub = driver.subscription(user, sub["id"])
    grants = driver.period_grants(user)
    paid = driver.paid_invoices(sub)
    assert len(paid) == 4
    assert len(grants) == 4
    assert {g.reference for g in grants} == {f"invoice:{invoice.id}" for invoice in paid}
    assert all(g.amount == STARTER.credits_per_period and g.source == "subscription" for g in grants)
    assert sub["status"] == "active"
    assert sub["periods_granted"] == 4
    assert driver.stack.balance(user) == 4 * STARTER.credits_per_period
    # The starter plan does not roll credits over: each period's lot expires when its period ends.
    assert not STARTER.credits_roll_over
    assert driver.period_lots(user) == {
        f"invoice:{invoice.id}": (invoice.lines.data[0].period.end, invoice.amount_paid, invoice.currency)
        for invoice in paid
    }
    renewals = [m for m in driver.mail() if m.to == "buyer@example.com" and "renews on" in m.subject]
    assert renewals, "an upcoming renewal notice before each renewal"

    # Pause with `void`: the periods go by, their invoices are voided, no credits.
    paused = driver.call("POST", f"/api/subscriptions/{sub['id']}/pause", user, {"behavior": "void"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["subscription"]["pause_collection"]["behavior"] == "void"
    past_period_end(driver, sub, clock)
    past_period_end(driver, sub, clock)
    voided = driver.stack.stripe.v1.invoices.list(
        params={"subscription": sub["stripe_subscription_id"], "status": "void"}
    ).data
    assert len(voided) == 2
    assert len(driver.period_grants(user)) == 4

    resumed = driver.call("POST", f"/api/subscriptions/{sub['id']}/resume", user)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["subscription"]["pause_collection"] is None
    past_period_end(driver, sub, clock)
    assert len(driver.period_grants(user)) == 5
    assert driver.stack.balance(user) == 5 * STARTER.credits_per_period


@pytest.mark.parametrize("proration", ["always_invoice", "create_prorations", "none"])
def test_an_upgrade_mid_period_uses_the_chosen_proration(driver: SubscriptionDriver, proration: str) -> None:
    user = new_user()
    sub = driver.subscribe(user)
    clock = driver.clock_of(sub)
    driver.advance(clock, 10 * DAY)
    changed = driver.call(
        "PUT", f"/api/subscriptions/{sub['id']}", user, {"plan_id": "pro", "proration_behavior": proration}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["subscription"]["plan_id"] == "pro"
    driver.settle()
    stripe_sub = driver.stripe_subscription(sub)
    pro_price = stripe_sub["items"]["data"][0]["price"]
    assert pro_price["unit_amount"] == PRO.price("usd", "month").amount_minor  # type: ignore[union-attr]
    assert driver.subscription(user, sub["id"])["plan_id"] == "pro"

    customer = str(stripe_sub.customer)
    pending = driver.stack.stripe.v1.invoice_items.list(params={"customer": customer, "pending": True}).data
    update_invoices = [
        i
        for i in driver.stack.stripe.v1.invoices.list(params={"subscription": sub["stripe_subscription_id"]}).data
        if i.billing_reason == "subscription_update"
    ]
    if proration == "always_invoice":
        assert len(update_invoices) == 1
        assert update_invoices[0].status == "paid"
        assert not pending
    elif proration == "create_prorations":
        assert not update_invoices
        assert len(pending) == 2
        assert all(item.proration for item in pending)
    else:
        assert not update_invoices
        assert not pending
    # A mid-period change grants nothing; the new plan's credits come with the next period.
    assert len(driver.period_grants(user)) == 1
    past_period_end(driver, sub, clock)
    grants = driver.period_grants(user)
    assert [g.amount for g in grants] == [STARTER.credits_per_period, PRO.credits_per_period]
    # Pro rolls its credits over: its period's lot never expires; starter's does.
    assert PRO.credits_roll_over
    expiries = driver.period_lots(user)
    assert expiries[grants[0].reference][0] is not None
    assert expiries[grants[1].reference][0] is None


def test_cancel_at_period_end_stays_active_until_the_end_and_grants_nothing_after(
    driver: SubscriptionDriver,
) -> None:
    user = new_user()
    sub = driver.subscribe(user)
    clock = driver.clock_of(sub)
    canceled = driver.call("DELETE", f"/api/subscriptions/{sub['id']}", user, {"reason": "too expensive"})
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()["subscription"]
    assert body["status"] == "active"
    assert body["cancel_at_period_end"] is True
    assert body["cancellation_reason"] == "too expensive"

    past_period_end(driver, sub, clock, extra=-HOUR)  # an hour before the end
    assert driver.subscription(user, sub["id"])["status"] == "active"
    past_period_end(driver, sub, clock)
    ended = driver.wait_subscription(user, sub["id"], lambda s: s["status"] == "canceled")
    assert ended["ended_at"] is not None
    driver.advance(clock, 40 * DAY)
    assert len(driver.period_grants(user)) == 1
    assert len(driver.paid_invoices(sub)) == 1

    # Ended: nothing more can be done with it, and the family is free again.
    again = driver.call("POST", f"/api/subscriptions/{sub['id']}/reactivate", user)
    assert again.status_code == 409
    assert again.json()["reason"] == "SUBSCRIPTION_STATE"
    assert "canceled" in again.json()["detail"]
    driver.subscribe(user)


def test_a_pending_cancellation_can_be_withdrawn(driver: SubscriptionDriver) -> None:
    user = new_user()
    sub = driver.subscribe(user)
    clock = driver.clock_of(sub)
    assert driver.call("DELETE", f"/api/subscriptions/{sub['id']}", user).status_code == 200
    reactivated = driver.call("POST", f"/api/subscriptions/{sub['id']}/reactivate", user)
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["subscription"]["cancel_at_period_end"] is False
    past_period_end(driver, sub, clock)
    assert driver.subscription(user, sub["id"])["status"] == "active"
    assert len(driver.period_grants(user)) == 2


def test_a_failed_renewal_is_past_due_with_a_notice_and_no_credits_until_paid(driver: SubscriptionDriver) -> None:
    user = new_user()
    sub = driver.subscribe(user)
    clock = driver.clock_of(sub)
    stripe = driver.stack.stripe
    customer = str(driver.stripe_subscription(sub).customer)
    failing = stripe.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
    stripe.v1.subscriptions.update(sub["stripe_subscription_id"], params={"default_payment_method": failing.id})

    past_period_end(driver, sub, clock)
    late = driver.wait_subscription(user, sub["id"], lambda s: s["status"] == "past_due")
    assert late["periods_granted"] == 1
    assert len(driver.period_grants(user)) == 1
    notices = [m for m in driver.mail() if m.to == "buyer@example.com" and "failed" in m.subject]
    assert len(notices) == 1
    assert "Starter" in notices[0].subject

    open_invoice = stripe.v1.invoices.list(
        params={"subscription": sub["stripe_subscription_id"], "status": "open"}
    ).data
    assert len(open_invoice) == 1
    good = stripe.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    stripe.v1.invoices.pay(open_invoice[0].id, params={"payment_method": good.id})
    driver.settle()
    back = driver.wait_subscription(user, sub["id"], lambda s: s["status"] == "active")
    assert back["periods_granted"] == 2
    assert len(driver.period_grants(user)) == 2


def test_one_live_subscription_per_user_and_family_even_under_concurrent_requests(
    driver: SubscriptionDriver,
) -> None:
    user = new_user()

    def start(_: int) -> Any:
        """As a client should: a 503/504 or a request still in flight is retried with the same key."""
        key = uuid.uuid4().hex
        body = {"plan_id": "starter", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/cancel"}
        for _attempt in range(20):
            answer = driver.call("POST", "/api/stripe/create-checkout-session", user, body, key=key)
            retry = answer.status_code in (503, 504) or (
                answer.status_code == 409 and answer.json()["reason"] == "IDEMPOTENCY_KEY_IN_FLIGHT"
            )
            if not retry:
                return answer
            time.sleep(0.2)  # a client's backoff before retrying the same key
        return answer

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(start, range(10)))
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    assert {a.json()["reason"] for a in answers if a.status_code == 409} <= {"SUBSCRIPTION_EXISTS"}
    created = [a.json() for a in answers if a.status_code == 201]
    assert created
    with driver.subscriptions_engine.connect() as conn:
        live = conn.execute(
            text("SELECT id, checkout_session_id FROM subscriptions WHERE user_id = :u AND family_slot IS NOT NULL"),
            {"u": user},
        ).all()
    assert len(live) == 1
    sessions = [driver.stack.stripe.v1.checkout.sessions.retrieve(c["checkout_session_id"]) for c in created]
    assert [s.id for s in sessions if s.status == "open"] == [live[0].checkout_session_id]

    # Once subscribed, a second subscription in the family is refused.
    driver.subscribe(user)
    refused = start(0)
    assert refused.status_code == 409
    assert refused.json()["reason"] == "SUBSCRIPTION_EXISTS"


def test_users_cannot_see_or_change_another_users_subscription(driver: SubscriptionDriver) -> None:
    owner, other = new_user(), new_user()
    sub = driver.subscribe(owner)
    assert driver.call("GET", f"/api/subscriptions/{owner}", other).status_code == 403
    sid = sub["id"]
    attempts = [
        ("PUT", f"/api/subscriptions/{sid}", {"quantity": 5}),
        ("DELETE", f"/api/subscriptions/{sid}", {"at_period_end": False}),
        ("POST", f"/api/subscriptions/{sid}/pause", {"behavior": "void"}),
        ("POST", f"/api/subscriptions/{sid}/resume", None),
        ("POST", f"/api/subscriptions/{sid}/reactivate", None),
    ]
    for method, path, body in attempts:
        answer = driver.call(method, path, other, body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert owner not in answer.text
    stripe_sub = driver.stripe_subscription(sub)
    assert stripe_sub.status == "active"
    assert stripe_sub["items"]["data"][0]["quantity"] == 1
    assert stripe_sub.pause_collection is None
    assert driver.subscription(owner, sid)["status"] == "active"
    # An admin may act on anyone's.
    admin = driver.call("GET", f"/api/subscriptions/{owner}", "admin-1", roles=("admin",))
    assert admin.status_code == 200
    assert [s["id"] for s in admin.json()["subscriptions"]] == [sid]


def test_plans_are_listed_with_their_synced_prices(driver: SubscriptionDriver) -> None:
    response = driver.stack.http.get("/api/plans")
    assert response.status_code == 200
    plans = {p["plan_id"]: p for p in response.json()["plans"]}
    assert set(plans) == {p.plan_id for p in PLANS.plans}
    assert plans["pro"]["trial_days"] == PRO.trial_days
    assert {(p["currency"], p["interval"], p["amount_minor"]) for p in plans["starter"]["prices"]} == {
        (p.currency, p.interval, p.amount_minor) for p in STARTER.prices
    }


def test_a_trial_from_the_plan_grants_trial_credits_then_period_credits(driver: SubscriptionDriver) -> None:
    user = new_user()
    sub = driver.subscribe(user, "pro", card=GOOD_CARD)
    assert sub["status"] == "trialing"
    clock = driver.clock_of(sub)
    driver.settle()
    assert [g.amount for g in driver.period_grants(user)] == [PRO.trial_credits]
    driver.advance(clock, (PRO.trial_days - 2) * DAY)
    assert any("trial ends" in m.subject for m in driver.mail() if m.to == "buyer@example.com")
    driver.advance(clock, 3 * DAY)
    active = driver.wait_subscription(user, sub["id"], lambda s: s["status"] == "active")
    assert active["periods_granted"] == 2
    assert [g.amount for g in driver.period_grants(user)] == [PRO.trial_credits, PRO.credits_per_period]


def test_the_portal_and_an_elements_subscription(driver: SubscriptionDriver) -> None:
    user = new_user()
    portal = driver.call("POST", "/api/stripe/customer-portal", user, {"return_url": "http://127.0.0.1/billing"})
    assert portal.status_code == 200, portal.text
    assert portal.json()["url"].startswith("http")
    created = driver.call("POST", "/api/stripe/create-subscription", user, {"plan_id": "starter"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["subscription"]["status"] == "incomplete"
    assert body["client_secret"]
    # What Stripe.js does with the client secret: confirm its PaymentIntent with the card typed in Elements.
    intent_id = body["client_secret"].split("_secret_")[0]
    driver.stack.stripe.v1.payment_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    driver.settle()
    live = driver.wait_subscription(user, body["subscription"]["id"], lambda s: s["status"] == "active")
    assert live["periods_granted"] == 1
    wait_for(lambda: len(driver.period_grants(user)) == 1, "the first period's grant")

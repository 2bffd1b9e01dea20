"""The admin API over the real stack: the dashboard's figures from the three services (and a partial answer
when one is down), lists with filters, paging and CSV, webhook events, the audit log, and no admin data for
anyone else."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for
from tests.support.subscriptions import SubscriptionDriver

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]
ADMIN = ("user", "admin")
ADMIN_GETS = [
    "/api/admin/financial-dashboard",
    "/api/admin/transactions",
    "/api/admin/subscriptions",
    "/api/admin/ledger/transfers",
    "/api/admin/webhook-events",
    "/api/admin/audit-log",
    "/api/admin/payments",
    "/api/admin/credits/ledger-check",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path_factory.mktemp("admin"), subscriptions=True) as running:
        yield running


@pytest.fixture
def driver(stack: PurchaseStack) -> Iterator[SubscriptionDriver]:
    running = SubscriptionDriver(stack)
    yield running
    running.close()


def admin_get(stack: PurchaseStack, path: str, **params: str) -> Any:
    response = stack.http.get(path, params=params, headers=stack.as_user("admin-1", ADMIN))
    assert response.status_code == 200, response.text
    return response.json() if response.headers["content-type"].startswith("application/json") else response.text


def buy_and_pay(stack: PurchaseStack, user: str, package: str = "credits-100") -> dict[str, Any]:
    bought = stack.buy(user, package)
    assert pay_on_hosted_page(stack, bought["url"], "4242 4242 4242 4242").paid
    return wait_for(
        lambda: (p := stack.payment(user, bought["payment_id"]))["credits_granted"] and p, "the purchase's credits"
    )


def dashboard(stack: PurchaseStack) -> dict[str, Any]:
    body: dict[str, Any] = admin_get(stack, "/api/admin/financial-dashboard")
    return body


def usd(figures: dict[str, Any]) -> dict[str, Any]:
    totals = {t["currency"]: t for t in figures["revenue"]["totals"]}
    return totals.get("usd", {"gross_minor": 0, "refunds_minor": 0, "net_minor": 0, "payments": 0})


def test_the_dashboard_follows_a_purchase_a_refund_and_a_subscription(
    stack: PurchaseStack, driver: SubscriptionDriver
) -> None:
    before = dashboard(stack)
    assert before["missing"] == []
    user = f"admin-buyer-{uuid.uuid4().hex[:8]}"
    payment = buy_and_pay(stack, user)
    amount = payment["amount"]["amount_minor"]
    after_buy = dashboard(stack)
    assert usd(after_buy)["gross_minor"] == usd(before)["gross_minor"] + amount
    assert usd(after_buy)["payments"] == usd(before)["payments"] + 1
    assert after_buy["credits"]["granted"] == before["credits"]["granted"] + payment["credits"]
    assert after_buy["credits"]["outstanding"] == before["credits"]["outstanding"] + payment["credits"]
    today = [d for d in after_buy["revenue"]["daily"] if d["currency"] == "usd"]
    assert sum(d["gross_minor"] for d in today) == usd(after_buy)["gross_minor"]

    refund = stack.http.post(
        f"/api/admin/payments/{payment['id']}/refund",
        headers={**stack.as_user("admin-1", ADMIN), "Idempotency-Key": uuid.uuid4().hex},
        json={"amount_minor": amount // 2},
    )
    assert refund.status_code == 201, refund.text
    wait_for(lambda: dashboard(stack)["credits"]["reversed"] > after_buy["credits"]["reversed"], "the reversal")
    after_refund = dashboard(stack)
    assert usd(after_refund)["refunds_minor"] == usd(after_buy)["refunds_minor"] + amount // 2
    assert usd(after_refund)["net_minor"] == usd(after_refund)["gross_minor"] - usd(after_refund)["refunds_minor"]

    driver.subscribe(f"admin-sub-{uuid.uuid4().hex[:8]}")
    with_sub = dashboard(stack)
    mrr = {r["currency"]: r["mrr_minor"] for r in with_sub["subscriptions"]["recurring"]}
    before_mrr = {r["currency"]: r["mrr_minor"] for r in after_refund["subscriptions"]["recurring"]}
    assert mrr["usd"] == before_mrr.get("usd", 0) + 900
    assert with_sub["subscriptions"]["by_status"]["active"] >= 1
    assert with_sub["subscriptions"]["new"] == after_refund["subscriptions"]["new"] + 1

    def invoices(figures: dict[str, Any]) -> int:
        return sum(r["paid_minor"] for r in figures["subscriptions"]["invoice_revenue"] if r["currency"] == "usd")

    # The first invoice's payment may be handled just after the subscription turned active.
    wait_for(lambda: invoices(dashboard(stack)) == invoices(after_refund) + 900, "the first invoice's revenue")

    # The lists show the purchase and the refund, page by page and as CSV; the audit log shows the refund.
    listed = admin_get(stack, "/api/admin/transactions", user_id=user)
    kinds = sorted(t["kind"] for t in listed["transactions"])
    assert kinds == ["payment", "refund"]
    refund_row = next(t for t in listed["transactions"] if t["kind"] == "refund")
    assert refund_row["actor"] == "admin:admin-1"
    exported = admin_get(stack, "/api/admin/transactions", user_id=user, format="csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted(r["kind"] for r in rows) == ["payment", "refund"]
    assert {r["amount.currency"] for r in rows} == {"usd"}
    first = admin_get(stack, "/api/admin/transactions", user_id=user, page_size="1")
    second = admin_get(
        stack, "/api/admin/transactions", user_id=user, page_size="1", page_token=first["next_page_token"]
    )
    assert {first["transactions"][0]["id"], second["transactions"][0]["id"]} == {
        t["id"] for t in listed["transactions"]
    }
    audit = admin_get(stack, "/api/admin/audit-log", service="payments", action="payments.refund")
    assert any(r["target"] == f"payment:{payment['id']}" and r["actor"] == "admin:admin-1" for r in audit["records"])
    transfers = admin_get(stack, "/api/admin/ledger/transfers", user_id=user)
    assert sorted(t["kind"] for t in transfers["transfers"]) == ["grant", "reversal"]
    events = admin_get(stack, "/api/admin/webhook-events", service="payments")
    assert any(e["type"] == "checkout.session.completed" for e in events["events"])
    subs = admin_get(stack, "/api/admin/subscriptions", status="active")
    assert subs["subscriptions"]
    assert all(s["status"] == "active" for s in subs["subscriptions"])


def test_an_admin_grant_is_audited_once(stack: PurchaseStack) -> None:
    user = f"granted-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    for _ in range(2):  # the second is a replay
        granted = stack.http.post(
            "/api/admin/credits/grants",
            headers={**stack.as_user("admin-2", ADMIN), "Idempotency-Key": key},
            json={"user_id": user, "amount": 25, "source": "promotion"},
        )
        assert granted.status_code == 201, granted.text
    audit = admin_get(stack, "/api/admin/audit-log", service="credits", actor="admin:admin-2")
    assert [r["target"] for r in audit["records"]].count(f"user:{user}") == 1


def test_a_service_down_gives_a_partial_dashboard(stack: PurchaseStack) -> None:
    assert stack.subscriptions is not None
    stack.subscriptions.kill()
    try:
        partial = dashboard(stack)
        assert partial["missing"] == ["subscriptions"]
        assert partial["subscriptions"] is None
        assert partial["revenue"] is not None
        assert partial["credits"] is not None
    finally:
        stack.subscriptions.start_again()
    wait_for(lambda: dashboard(stack)["missing"] == [], "the full dashboard again")


def test_nobody_but_an_admin_gets_admin_data(stack: PurchaseStack) -> None:
    for path in ADMIN_GETS:
        as_user = stack.http.get(path, headers=stack.as_user("plain-user"))
        assert as_user.status_code == 403, (path, as_user.text)
        assert "revenue" not in as_user.text
        assert stack.http.get(path).status_code == 401
    redrive = stack.http.post(
        "/api/admin/webhook-events/payments/evt_123/redrive",
        headers={**stack.as_user("plain-user"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert redrive.status_code == 403

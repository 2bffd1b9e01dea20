"""Every object the sandbox answers has every field Stripe's own example object of that type has.

The reference is Stripe's fixtures3.json from ../shared/stripe/ when it is there, else the copy
the sandbox ships (stripe_sandbox/fixtures/objects.json); the same holds for the nested objects
the sandbox fills in (a charge's card details, a subscription's items, an invoice's lines, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from tests.support.stripe_sandbox import SECRET_KEY, SandboxProcess

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "stripe" / "fixtures3.json"
SHIPPED = ROOT / "stripe_sandbox" / "fixtures" / "objects.json"


def reference() -> dict[str, Any]:
    source = SHARED if SHARED.exists() else SHIPPED
    resources = json.loads(source.read_text())["resources"]
    assert isinstance(resources, dict)
    return resources


def missing_fields(answer: dict[str, Any], example: dict[str, Any]) -> list[str]:
    return sorted(set(example) - set(answer))


@pytest.fixture(scope="module")
def objects(sandbox: SandboxProcess) -> Iterator[dict[str, dict[str, Any]]]:
    """One of each object type, as raw JSON from the API, made through real flows."""
    client = sandbox.client()
    http = httpx.Client(base_url=sandbox.url, auth=(SECRET_KEY, ""), timeout=15)

    def get(path: str, **params: Any) -> dict[str, Any]:
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        data = response.json()
        assert isinstance(data, dict)
        return data

    with http:
        customer = client.v1.customers.create(params={"email": "shapes@example.com"})
        product = client.v1.products.create(params={"name": "Shapes plan"})
        price = client.v1.prices.create(
            params={"unit_amount": 900, "currency": "usd", "product": product.id, "recurring": {"interval": "month"}}
        )
        paid = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "customer": customer.id,
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {"currency": "usd", "unit_amount": 700, "product_data": {"name": "x"}},
                    }
                ],
                "success_url": "https://example.com/ok",
            }
        )
        sandbox.control("post", f"/checkout/sessions/{paid.id}/pay", card="4242424242424242")
        intent_id = get(f"/v1/checkout/sessions/{paid.id}")["payment_intent"]
        intent = get(f"/v1/payment_intents/{intent_id}")
        refund = client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 100})
        subscribed = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": price.id, "quantity": 2}],
                "success_url": "https://e.com",
            }
        )
        sandbox.control("post", f"/checkout/sessions/{subscribed.id}/pay", card="4242424242424242", email="s@e.com")
        session = get(f"/v1/checkout/sessions/{subscribed.id}")
        subscription = get(f"/v1/subscriptions/{session['subscription']}")
        invoice = get(f"/v1/invoices/{session['invoice']}")
        portal = http.post("/v1/billing_portal/sessions", data={"customer": customer.id}).json()
        endpoint = http.post(
            "/v1/webhook_endpoints", data={"url": "https://example.com/hook", "enabled_events[0]": "*"}
        ).json()
        deleted = http.delete(f"/v1/webhook_endpoints/{endpoint['id']}").json()
        declined = client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
        with pytest.raises(stripe.CardError):
            client.v1.payment_intents.confirm(declined.id, params={"payment_method": "pm_card_chargeDeclined"})
        event = get("/v1/events", limit=1, type="customer.subscription.created")["data"][0]
        yield {
            "customer": get(f"/v1/customers/{customer.id}"),
            "product": get(f"/v1/products/{product.id}"),
            "price": get(f"/v1/prices/{price.id}"),
            "checkout.session": get(f"/v1/checkout/sessions/{paid.id}"),
            "item": get(f"/v1/checkout/sessions/{paid.id}/line_items")["data"][0],
            "payment_intent": intent,
            "payment_method": get(f"/v1/payment_methods/{intent['payment_method']}"),
            "charge": get(f"/v1/charges/{intent['latest_charge']}"),
            "refund": get(f"/v1/refunds/{refund.id}"),
            "event": event,
            "webhook_endpoint": endpoint,
            "deleted_webhook_endpoint": deleted,
            "billing_portal.session": portal,
            "subscription": subscription,
            "subscription_item": subscription["items"]["data"][0],
            "invoice": invoice,
            "line_item": invoice["lines"]["data"][0],
            "declined_payment_intent": get(f"/v1/payment_intents/{declined.id}"),
        }


KINDS = [
    "customer",
    "product",
    "price",
    "checkout.session",
    "item",
    "payment_intent",
    "payment_method",
    "charge",
    "refund",
    "event",
    "webhook_endpoint",
    "deleted_webhook_endpoint",
    "billing_portal.session",
    "subscription",
    "subscription_item",
    "invoice",
    "line_item",
]


@pytest.mark.parametrize("kind", KINDS)
def test_top_level_fields(objects: dict[str, dict[str, Any]], kind: str) -> None:
    assert missing_fields(objects[kind], reference()[kind]) == []


# (object, path to a nested object in the answer, the same path in the reference, reference type)
NESTED = [
    ("charge", ["payment_method_details"], ["payment_method_details"], "charge"),
    ("charge", ["payment_method_details", "card"], ["payment_method_details", "card"], "charge"),
    ("charge", ["outcome"], ["outcome"], "charge"),
    ("charge", ["billing_details"], ["billing_details"], "charge"),
    ("charge", ["billing_details", "address"], ["billing_details", "address"], "charge"),
    ("charge", ["refunds"], ["refunds"], "charge"),
    ("payment_method", ["card"], ["card"], "payment_method"),
    ("payment_method", ["billing_details"], ["billing_details"], "payment_method"),
    ("checkout.session", ["customer_details"], ["customer_details"], "checkout.session"),
    ("checkout.session", ["total_details"], ["total_details"], "checkout.session"),
    ("checkout.session", ["custom_text"], ["custom_text"], "checkout.session"),
    ("checkout.session", ["automatic_tax"], ["automatic_tax"], "checkout.session"),
    ("checkout.session", ["collected_information"], ["collected_information"], "checkout.session"),
    ("item", ["price"], ["price"], "item"),
    ("price", ["recurring"], ["recurring"], "price"),
    ("refund", ["destination_details"], ["destination_details"], "refund"),
    ("refund", ["destination_details", "card"], ["destination_details", "card"], "refund"),
    ("event", ["request"], ["request"], "event"),
    ("subscription", ["items"], ["items"], "subscription"),
    ("subscription", ["items", "data", 0], ["items", "data", 0], "subscription"),
    ("subscription", ["items", "data", 0, "price"], ["items", "data", 0, "price"], "subscription"),
    ("subscription", ["items", "data", 0, "plan"], ["items", "data", 0, "plan"], "subscription"),
    ("subscription", ["invoice_settings"], ["invoice_settings"], "subscription"),
    ("subscription", ["cancellation_details"], ["cancellation_details"], "subscription"),
    ("subscription", ["trial_settings"], ["trial_settings"], "subscription"),
    ("invoice", ["lines", "data", 0], ["lines", "data", 0], "invoice"),
    ("invoice", ["lines", "data", 0, "period"], ["lines", "data", 0, "period"], "invoice"),
    ("invoice", ["lines", "data", 0, "pricing"], ["lines", "data", 0, "pricing"], "invoice"),
    ("invoice", ["status_transitions"], ["status_transitions"], "invoice"),
    ("invoice", ["parent", "subscription_details"], ["parent", "subscription_details"], "invoice"),
    ("invoice", ["automatic_tax"], ["automatic_tax"], "invoice"),
    ("customer", ["invoice_settings"], ["invoice_settings"], "customer"),
]


def _at(obj: Any, path: list[Any]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


@pytest.mark.parametrize(("kind", "path", "example_path", "example_kind"), NESTED, ids=lambda v: str(v))
def test_nested_fields(
    objects: dict[str, dict[str, Any]], kind: str, path: list[Any], example_path: list[Any], example_kind: str
) -> None:
    answer = _at(objects[kind], path)
    assert isinstance(answer, dict), f"{kind}.{path} is {answer!r}"
    assert missing_fields(answer, _at(reference()[example_kind], example_path)) == []


def test_a_decline_is_described_like_stripe(objects: dict[str, dict[str, Any]]) -> None:
    error = objects["declined_payment_intent"]["last_payment_error"]
    assert {"type", "code", "decline_code", "message", "charge", "payment_method", "doc_url"} <= set(error)
    assert missing_fields(error["payment_method"], reference()["payment_method"]) == []


def test_event_snapshots_are_whole_objects(objects: dict[str, dict[str, Any]]) -> None:
    event = objects["event"]
    assert event["type"] == "customer.subscription.created"
    assert missing_fields(event["data"]["object"], reference()["subscription"]) == []
    assert event["id"].startswith("evt_")
    assert event["livemode"] is False
    assert event["api_version"] == stripe.api_version


def test_the_shipped_fixtures_are_stripes_own() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not here to compare with")
    shipped = json.loads(SHIPPED.read_text())["resources"]
    original = json.loads(SHARED.read_text())["resources"]
    assert shipped == {kind: original[kind] for kind in shipped}


def test_no_example_value_leaks(objects: dict[str, dict[str, Any]]) -> None:
    """Placeholders in Stripe's examples ("obj_123", "T-shirt", ...) never reach an answer."""
    text = json.dumps(objects)
    for placeholder in ("obj_123", "T-shirt", "Jenny Rosen", "example.com/my/webhook", "1234567890", "sangeekp"):
        assert placeholder not in text, placeholder

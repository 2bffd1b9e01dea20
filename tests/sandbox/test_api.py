"""The sandbox's API through the real `stripe` library: each resource, lists, expansion and errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import stripe

from tests.sandbox.conftest import unique
from tests.support.stripe_sandbox import SECRET_KEY, SandboxProcess


def event_types_since(client: stripe.StripeClient, since: int, object_id: str) -> list[str]:
    """Types of the events about `object_id` created since `since`, oldest first."""
    events = client.v1.events.list(params={"created": {"gte": since}, "limit": 100}).data
    return [event.type for event in reversed(events) if event.data.object.to_dict().get("id") == object_id]


class TestCustomers:
    def test_create_retrieve_update_list_delete(self, client: stripe.StripeClient) -> None:
        since = int(time.time())
        email = f"{unique('c')}@example.com"
        customer = client.v1.customers.create(
            params={"email": email, "name": "Ada", "metadata": {"user_id": "u1"}, "address": {"country": "GB"}}
        )
        assert customer.id.startswith("cus_")
        assert customer.object == "customer"
        assert customer.livemode is False
        assert customer.metadata.to_dict() == {"user_id": "u1"}
        assert customer.address.country == "GB"
        assert customer.address.city is None
        assert client.v1.customers.retrieve(customer.id).email == email

        updated = client.v1.customers.update(
            customer.id, params={"name": "Ada L.", "metadata": {"user_id": "", "x": "1"}}
        )
        assert updated.name == "Ada L."
        assert updated.metadata.to_dict() == {"x": "1"}
        event = client.v1.events.list(params={"type": "customer.updated", "limit": 1}).data[0]
        assert event.data.object.id == customer.id
        assert event.data.previous_attributes.to_dict() == {"name": "Ada", "metadata": {"user_id": "u1"}}

        found = client.v1.customers.list(params={"email": email})
        assert [c.id for c in found.data] == [customer.id]
        assert found.url == "/v1/customers"

        deleted = client.v1.customers.delete(customer.id)
        assert deleted.deleted is True
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.customers.retrieve(customer.id)
        assert caught.value.http_status == 404
        assert caught.value.code == "resource_missing"
        assert event_types_since(client, since, customer.id) == [
            "customer.created",
            "customer.updated",
            "customer.deleted",
        ]

    def test_bad_email_is_refused(self, client: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.customers.create(params={"email": "not-an-email"})
        assert caught.value.param == "email"


class TestProductsAndPrices:
    def test_lookup_keys(self, client: stripe.StripeClient) -> None:
        key = unique("pro_monthly")
        product = client.v1.products.create(params={"name": "Pro", "metadata": {"tier": "pro"}})
        assert product.id.startswith("prod_")
        assert product.active is True
        monthly = client.v1.prices.create(
            params={
                "unit_amount": 1500,
                "currency": "USD",
                "product": product.id,
                "recurring": {"interval": "month"},
                "lookup_key": key,
                "metadata": {"plan": "pro"},
            }
        )
        assert (monthly.type, monthly.currency, str(monthly.unit_amount_decimal)) == ("recurring", "usd", "1500")
        assert monthly.recurring.interval == "month"
        assert monthly.recurring.interval_count == 1
        assert [p.id for p in client.v1.prices.list(params={"lookup_keys": [key]}).data] == [monthly.id]

        with pytest.raises(stripe.InvalidRequestError) as taken:
            client.v1.prices.create(
                params={"unit_amount": 1600, "currency": "usd", "product": product.id, "lookup_key": key}
            )
        assert taken.value.param == "lookup_key"

        newer = client.v1.prices.create(
            params={
                "unit_amount": 1600,
                "currency": "usd",
                "product_data": {"name": "Pro 2"},
                "recurring": {"interval": "month"},
                "lookup_key": key,
                "transfer_lookup_key": True,
            }
        )
        assert client.v1.prices.retrieve(monthly.id).lookup_key is None
        assert [p.id for p in client.v1.prices.list(params={"lookup_keys": [key]}).data] == [newer.id]
        assert client.v1.products.retrieve(newer.product).name == "Pro 2"

        archived = client.v1.prices.update(monthly.id, params={"active": False, "metadata": {"plan": ""}})
        assert archived.active is False
        assert archived.metadata.to_dict() == {}
        listed = client.v1.prices.list(params={"product": product.id, "active": False, "type": "recurring"})
        assert [p.id for p in listed.data] == [monthly.id]
        assert client.v1.prices.list(params={"product": product.id, "active": True}).data == []

        renamed = client.v1.products.update(product.id, params={"name": "Pro plan", "active": False})
        assert renamed.name == "Pro plan"
        assert renamed.active is False
        assert product.id in [p.id for p in client.v1.products.list(params={"active": False, "limit": 100}).data]

    def test_price_needs_a_product(self, client: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.prices.create(params={"unit_amount": 100, "currency": "usd"})
        assert caught.value.code == "parameter_missing"
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.prices.create(params={"unit_amount": 100, "currency": "usd", "product": "prod_nope"})
        assert (caught.value.code, caught.value.param) == ("resource_missing", "product")


class TestPaymentIntents:
    def test_confirm_succeeds_with_pm_card_visa(self, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create(params={"email": "pi@example.com"})
        intent = client.v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "customer": customer.id,
                "description": "100 credits",
                "metadata": {"payment_id": "pay_1"},
                "automatic_payment_methods": {"enabled": True},
            }
        )
        assert intent.status == "requires_payment_method"
        assert intent.client_secret.startswith(f"{intent.id}_secret_")
        assert intent.automatic_payment_methods.enabled is True

        confirmed = client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
        assert (confirmed.status, confirmed.amount_received) == ("succeeded", 2000)
        charge = client.v1.charges.retrieve(confirmed.latest_charge)
        assert (charge.paid, charge.status, charge.amount, charge.payment_intent) == (
            True,
            "succeeded",
            2000,
            intent.id,
        )
        assert charge.metadata.to_dict() == {"payment_id": "pay_1"}
        card = charge.payment_method_details.card
        assert (card.brand, card.last4) == ("visa", "4242")
        method = client.v1.payment_methods.retrieve(confirmed.payment_method)
        assert (method.card.brand, method.card.last4, method.customer) == ("visa", "4242", customer.id)
        assert [c.id for c in client.v1.charges.list(params={"payment_intent": intent.id}).data] == [charge.id]
        assert intent.id in [i.id for i in client.v1.payment_intents.list(params={"customer": customer.id}).data]

        with pytest.raises(stripe.InvalidRequestError) as again:
            client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
        assert again.value.code == "payment_intent_unexpected_state"

    def test_decline_is_a_card_error(self, client: stripe.StripeClient) -> None:
        since = int(time.time())
        intent = client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
        with pytest.raises(stripe.CardError) as caught:
            client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})
        error = caught.value
        assert (error.http_status, error.code, error.error.decline_code) == (402, "card_declined", "generic_decline")
        assert error.user_message == "Your card was declined."
        assert error.error.payment_intent.id == intent.id
        after = client.v1.payment_intents.retrieve(intent.id)
        assert after.status == "requires_payment_method"
        assert after.last_payment_error.code == "card_declined"
        assert event_types_since(client, since, intent.id) == [
            "payment_intent.created",
            "payment_intent.payment_failed",
        ]
        # The same intent can be paid after a decline.
        assert client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"}).status == (
            "succeeded"
        )

    def test_cancel_and_limits(self, client: stripe.StripeClient) -> None:
        intent = client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
        canceled = client.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "abandoned"})
        assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.cancel(intent.id)
        with pytest.raises(stripe.InvalidRequestError) as small:
            client.v1.payment_intents.create(params={"amount": 10, "currency": "usd"})
        assert small.value.code == "amount_too_small"
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.payment_intents.create(params={"currency": "usd"})
        assert (missing.value.code, missing.value.param) == ("parameter_missing", "amount")

    def test_create_and_confirm_at_once(self, client: stripe.StripeClient) -> None:
        intent = client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "payment_method": "pm_card_mastercard", "confirm": True}
        )
        assert intent.status == "succeeded"
        assert client.v1.charges.retrieve(intent.latest_charge).payment_method_details.card.brand == "mastercard"


def paid_intent(client: stripe.StripeClient, amount: int = 1000) -> Any:
    intent = client.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    return client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})


class TestRefunds:
    def test_partial_then_the_rest(self, client: stripe.StripeClient) -> None:
        since = int(time.time())
        intent = paid_intent(client, 1000)
        partial = client.v1.refunds.create(
            params={
                "payment_intent": intent.id,
                "amount": 300,
                "reason": "requested_by_customer",
                "metadata": {"k": "v"},
            }
        )
        assert (partial.status, partial.amount, partial.charge) == ("succeeded", 300, intent.latest_charge)
        assert partial.id.startswith("re_")
        assert partial.reason == "requested_by_customer"
        charge = client.v1.charges.retrieve(intent.latest_charge)
        assert (charge.amount_refunded, charge.refunded) == (300, False)

        rest = client.v1.refunds.create(params={"charge": charge.id})
        assert rest.amount == 700
        charge = client.v1.charges.retrieve(charge.id)
        assert (charge.amount_refunded, charge.refunded) == (1000, True)
        assert [r.id for r in charge.refunds.data] == [rest.id, partial.id]
        assert [r.id for r in client.v1.refunds.list(params={"payment_intent": intent.id}).data] == [
            rest.id,
            partial.id,
        ]
        assert client.v1.refunds.retrieve(partial.id).metadata.to_dict() == {"k": "v"}

        refunded = [
            e for e in client.v1.events.list(params={"type": "charge.refunded", "created": {"gte": since}}).data
        ]
        mine = [e for e in refunded if e.data.object.id == charge.id]
        assert [e.data.object.amount_refunded for e in mine] == [1000, 300]
        assert mine[0].data.previous_attributes.to_dict() == {"amount_refunded": 300, "refunded": False}
        assert (
            len(
                [
                    e
                    for e in client.v1.events.list(params={"type": "refund.created", "limit": 5}).data
                    if e.data.object.charge == charge.id
                ]
            )
            == 2
        )

        with pytest.raises(stripe.InvalidRequestError) as done:
            client.v1.refunds.create(params={"charge": charge.id})
        assert done.value.code == "charge_already_refunded"

    def test_more_than_is_left(self, client: stripe.StripeClient) -> None:
        intent = paid_intent(client, 1000)
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 600})
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
        assert (caught.value.http_status, caught.value.code, caught.value.param) == (400, "amount_too_large", "amount")
        assert "$4.00" in str(caught.value.user_message)

    def test_nothing_to_refund(self, client: stripe.StripeClient) -> None:
        intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.refunds.create(params={"payment_intent": intent.id})
        with pytest.raises(stripe.InvalidRequestError) as neither:
            client.v1.refunds.create(params={"amount": 5})
        assert neither.value.code == "parameter_missing"


class TestBillingPortal:
    def test_portal_page_lists_subscriptions(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create(params={"email": "portal@example.com"})
        price = client.v1.prices.create(
            params={
                "unit_amount": 1200,
                "currency": "usd",
                "product_data": {"name": "Portal plan"},
                "recurring": {"interval": "month"},
            }
        )
        checkout = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "https://example.com/ok",
            }
        )
        sandbox.control("post", f"/checkout/sessions/{checkout.id}/pay", card="4242424242424242")
        portal = client.v1.billing_portal.sessions.create(
            params={"customer": customer.id, "return_url": "https://example.com/account"}
        )
        assert portal.id.startswith("bps_")
        assert portal.customer == customer.id
        assert portal.url == f"{sandbox.url}/billing_portal/{portal.id}"
        page = httpx.get(portal.url)
        assert page.status_code == 200
        assert '<meta charset="utf-8">' in page.text
        assert "Portal plan" in page.text
        assert "https://example.com/account" in page.text

        subscription = client.v1.checkout.sessions.retrieve(checkout.id).subscription
        canceled = httpx.post(f"{portal.url}/cancel", data={"subscription": subscription})
        assert canceled.status_code == 200
        assert "ends on" in canceled.text
        assert client.v1.subscriptions.retrieve(subscription).cancel_at_period_end is True

    def test_needs_a_known_customer(self, client: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.billing_portal.sessions.create(params={"customer": "cus_nope"})
        assert (caught.value.code, caught.value.param) == ("resource_missing", "customer")


class TestEvents:
    def test_pagination_and_filters(self, client: stripe.StripeClient) -> None:
        since = int(time.time())
        marker = unique("events")
        made = [client.v1.products.create(params={"name": f"{marker}-{n}"}) for n in range(5)]
        ids = [
            e.id
            for e in client.v1.events.list(
                params={"type": "product.created", "created": {"gte": since}, "limit": 100}
            ).data
            if e.data.object.name.startswith(marker)
        ]
        assert len(ids) == 5  # newest first
        first = client.v1.events.list(params={"type": "product.created", "created": {"gte": since}, "limit": 2})
        assert first.has_more is True
        assert [e.id for e in first.data] == ids[:2]
        second = client.v1.events.list(
            params={"type": "product.created", "created": {"gte": since}, "limit": 2, "starting_after": ids[1]}
        )
        assert [e.id for e in second.data] == ids[2:4]
        back = client.v1.events.list(
            params={"type": "product.created", "created": {"gte": since}, "limit": 2, "ending_before": ids[4]}
        )
        assert [e.id for e in back.data] == ids[2:4]
        assert back.has_more is True
        paged = [
            e.id
            for e in client.v1.events.list(
                params={"type": "product.*", "created": {"gte": since}, "limit": 2}
            ).auto_paging_iter()
        ]
        assert paged[:5] == ids
        both = client.v1.events.list(
            params={"types": ["product.created", "product.updated"], "created": {"gte": since}}
        )
        assert {e.type for e in both.data} <= {"product.created", "product.updated"}

        event = client.v1.events.retrieve(ids[-1])
        assert event.id == ids[-1]
        assert event.object == "event"
        assert event.livemode is False
        assert event.data.object.id == made[0].id
        assert event.request.idempotency_key
        assert event.request.id.startswith("req_")
        assert event.pending_webhooks >= 0

        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.events.retrieve("evt_nope")
        assert caught.value.http_status == 404


class TestWebhookEndpoints:
    def test_crud(self, client: stripe.StripeClient) -> None:
        created = client.v1.webhook_endpoints.create(
            params={
                "url": "https://example.com/hooks",
                "enabled_events": ["charge.succeeded", "charge.refunded"],
                "description": "test",
                "metadata": {"team": "billing"},
            }
        )
        assert created.id.startswith("we_")
        assert created.secret.startswith("whsec_")
        assert created.status == "enabled"
        fetched = client.v1.webhook_endpoints.retrieve(created.id)
        assert "secret" not in fetched
        assert fetched.enabled_events == ["charge.succeeded", "charge.refunded"]
        updated = client.v1.webhook_endpoints.update(created.id, params={"enabled_events": ["*"], "disabled": True})
        assert updated.enabled_events == ["*"]
        assert updated.status == "disabled"
        assert created.id in [e.id for e in client.v1.webhook_endpoints.list(params={"limit": 100}).data]
        gone = client.v1.webhook_endpoints.delete(created.id)
        assert gone.deleted is True
        assert gone.id == created.id
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.webhook_endpoints.retrieve(created.id)

    def test_needs_url_and_events(self, client: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as no_events:
            client.v1.webhook_endpoints.create(params={"url": "https://example.com/h"})
        assert no_events.value.param == "enabled_events"
        with pytest.raises(stripe.InvalidRequestError) as bad_url:
            client.v1.webhook_endpoints.create(params={"url": "ftp://x", "enabled_events": ["*"]})
        assert bad_url.value.param == "url"


class TestErrors:
    def test_wrong_or_missing_key(self, sandbox: SandboxProcess) -> None:
        with pytest.raises(stripe.AuthenticationError) as caught:
            sandbox.client(api_key="sk_test_wrong").v1.customers.list()
        assert caught.value.http_status == 401
        bare = httpx.get(f"{sandbox.url}/v1/customers")
        assert bare.status_code == 401
        assert bare.json()["error"]["type"] == "invalid_request_error"
        control = httpx.post(f"{sandbox.url}/_sandbox/reset")
        assert control.status_code == 401

    def test_parameter_errors(self, client: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as unknown:
            client.v1.customers.create(params={"emial": "x@example.com"})
        assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "emial")
        assert unknown.value.json_body["error"]["doc_url"].startswith("https://stripe.com/docs/error-codes/")
        with pytest.raises(stripe.InvalidRequestError) as nested:
            client.v1.checkout.sessions.create(
                params={"mode": "payment", "line_items": [{"price": "p", "quantity": 1, "colour": "red"}]}
            )
        assert nested.value.param == "line_items[0][colour]"
        with pytest.raises(stripe.InvalidRequestError) as integer:
            client.v1.payment_intents.create(params={"amount": "lots", "currency": "usd"})
        assert integer.value.code == "parameter_invalid_integer"

    def test_unrecognized_url(self, sandbox: SandboxProcess) -> None:
        response = httpx.get(f"{sandbox.url}/v1/nothing_here", auth=(SECRET_KEY, ""))
        assert response.status_code == 404
        assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing_here)")
        wrong_method = httpx.delete(f"{sandbox.url}/v1/events", auth=(SECRET_KEY, ""))
        assert wrong_method.status_code == 404

    def test_responses_carry_request_ids(self, sandbox: SandboxProcess) -> None:
        response = httpx.get(f"{sandbox.url}/v1/customers", auth=(SECRET_KEY, ""), headers={"Stripe-Version": "x"})
        assert response.headers["Request-Id"].startswith("req_")
        assert response.headers["Stripe-Version"] == "x"

    def test_form_body_only(self, sandbox: SandboxProcess) -> None:
        response = httpx.post(f"{sandbox.url}/v1/customers", auth=(SECRET_KEY, ""), json={"email": "a@example.com"})
        assert response.status_code == 400


def test_expand(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "expand@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "success_url": "https://example.com/ok",
            "line_items": [
                {
                    "quantity": 2,
                    "price_data": {"currency": "usd", "unit_amount": 250, "product_data": {"name": "Credits"}},
                }
            ],
        }
    )
    sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4242424242424242")
    expanded = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["customer", "payment_intent.latest_charge", "line_items"]}
    )
    assert expanded.customer.email == "expand@example.com"
    assert expanded.payment_intent.latest_charge.amount == 500
    assert [(item.description, item.quantity, item.amount_total) for item in expanded.line_items.data] == [
        ("Credits", 2, 500)
    ]
    listed = client.v1.checkout.sessions.list(params={"customer": customer.id, "expand": ["data.customer"]})
    assert listed.data[0].customer.id == customer.id
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["amount_total"]})
    assert caught.value.param == "expand"

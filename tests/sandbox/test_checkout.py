"""Checkout Sessions in both modes, paid on the hosted page (as a browser posts the form) or through the control API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import stripe

from tests.sandbox.conftest import unique
from tests.support.stripe_sandbox import SandboxProcess

SUCCESS = "https://shop.example.com/done?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://shop.example.com/cancel"
GOOD_FORM = {"card_expiry": "12 / 39", "card_cvc": "123", "cardholder_name": "Ada"}


def payment_session(client: stripe.StripeClient, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": "user-1",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "500 credits"}},
            }
        ],
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "metadata": {"payment_id": unique("pay")},
        "payment_intent_data": {"metadata": {"payment_id": "p-1", "user_id": "user-1"}},
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)


def post_card(session: Any, number: str, email: str = "buyer@example.com", **fields: str) -> httpx.Response:
    return httpx.post(session.url, data={"email": email, "card_number": number, **GOOD_FORM, **fields})


def events_about(client: stripe.StripeClient, since: int, *ids: str) -> list[tuple[str, str]]:
    """(type, object id) of the events about these objects since `since`, oldest first."""
    events = client.v1.events.list(params={"created": {"gte": since}, "limit": 100}).data
    found = []
    for event in reversed(events):
        obj = event.data.object.to_dict()
        if obj.get("id") in ids:
            found.append((event.type, obj["id"]))
    return found


def recurring_price(client: stripe.StripeClient, amount: int = 2500) -> Any:
    return client.v1.prices.create(
        params={
            "unit_amount": amount,
            "currency": "usd",
            "product_data": {"name": "Team plan"},
            "recurring": {"interval": "month"},
        }
    )


class TestCreate:
    def test_a_new_session(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create(params={"email": "buyer@example.com"})
        session = payment_session(client, customer=customer.id, allow_promotion_codes=True)
        assert session.id.startswith("cs_test_")
        assert session.object == "checkout.session"
        assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
        assert (session.amount_total, session.currency, session.customer) == (500, "usd", customer.id)
        assert session.url == f"{sandbox.url}/checkout/{session.id}"
        assert session.client_reference_id == "user-1"
        assert session.allow_promotion_codes is True
        assert session.payment_intent is None  # made when the customer pays, as in Stripe's current API
        assert session.expires_at - session.created == 24 * 3600
        assert client.v1.checkout.sessions.retrieve(session.id).metadata.to_dict() == session.metadata.to_dict()
        assert [s.id for s in client.v1.checkout.sessions.list(params={"customer": customer.id}).data] == [session.id]
        items = client.v1.checkout.sessions.line_items.list(session.id)
        assert [(i.description, i.quantity, i.amount_total) for i in items.data] == [("500 credits", 1, 500)]

    @pytest.mark.parametrize(
        ("change", "param"),
        [
            ({"line_items": None}, "line_items"),
            ({"mode": None}, "mode"),
            ({"customer": "cus_nope"}, "customer"),
            ({"success_url": "not a url"}, "success_url"),
            ({"expires_at": 1}, "expires_at"),
            ({"line_items": [{"quantity": 1}]}, "line_items[0][price]"),
            ({"line_items": [{"price": "price_nope", "quantity": 1}]}, "line_items[0][price]"),
            (
                {"line_items": [{"price_data": {"currency": "usd", "unit_amount": 500}, "quantity": 1}]},
                "line_items[0][price_data][product_data]",
            ),
            (
                {
                    "line_items": [
                        {
                            "price_data": {"currency": "usd", "unit_amount": 10, "product_data": {"name": "x"}},
                            "quantity": 1,
                        }
                    ]
                },
                "line_items",
            ),
            ({"subscription_data": {"trial_period_days": 3}}, "subscription_data"),
        ],
    )
    def test_refused(self, client: stripe.StripeClient, change: dict[str, Any], param: str) -> None:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "x"}}}
            ],
            "success_url": SUCCESS,
        }
        params.update(change)
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.checkout.sessions.create(params={k: v for k, v in params.items() if v is not None})
        assert caught.value.param == param

    def test_mode_and_recurring_prices_must_agree(self, client: stripe.StripeClient) -> None:
        price = recurring_price(client)
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.checkout.sessions.create(
                params={"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}], "success_url": SUCCESS}
            )
        assert "recurring price" in str(caught.value.user_message)
        one_time = client.v1.prices.create(
            params={"unit_amount": 500, "currency": "usd", "product_data": {"name": "x"}}
        )
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.checkout.sessions.create(
                params={"mode": "subscription", "line_items": [{"price": one_time.id, "quantity": 1}]}
            )
        inactive = client.v1.prices.update(one_time.id, params={"active": False})
        with pytest.raises(stripe.InvalidRequestError) as stale:
            client.v1.checkout.sessions.create(
                params={"mode": "payment", "line_items": [{"price": inactive.id, "quantity": 1}]}
            )
        assert "inactive" in str(stale.value.user_message)


class TestHostedPage:
    def test_renders_the_form(self, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create(params={"email": "prefill@example.com"})
        session = payment_session(client, customer=customer.id)
        page = httpx.get(session.url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert '<meta charset="utf-8">' in html
        assert "500 credits" in html
        assert "$5.00" in html
        for field in ('name="email"', 'name="card_number"', 'name="card_expiry"', 'name="card_cvc"'):
            assert field in html
        assert 'value="prefill@example.com"' in html
        assert "Pay $5.00" in html
        assert CANCEL in html
        assert "4000 0000 0000 1125" in html  # the delayed card is documented on the page
        assert httpx.get(session.url.replace(session.id, "cs_test_nope")).status_code == 404

    def test_decline_then_success(self, client: stripe.StripeClient) -> None:
        since = int(time.time())
        session = payment_session(client)
        declined = post_card(session, "4000 0000 0000 0002")
        assert declined.status_code == 402
        assert "Your card was declined." in declined.text
        after_decline = client.v1.checkout.sessions.retrieve(session.id)
        assert (after_decline.status, after_decline.payment_status) == ("open", "unpaid")
        intent_id = after_decline.payment_intent
        assert client.v1.payment_intents.retrieve(intent_id).status == "requires_payment_method"

        paid = post_card(session, "4242 4242 4242 4242")
        assert paid.status_code == 303
        assert paid.headers["location"] == SUCCESS.replace("{CHECKOUT_SESSION_ID}", session.id)
        done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
        assert (done.status, done.payment_status) == ("complete", "paid")
        assert done.customer_details.email == "buyer@example.com"
        intent = done.payment_intent
        assert (intent.id, intent.status, intent.amount_received) == (intent_id, "succeeded", 500)
        assert intent.metadata.to_dict() == {"payment_id": "p-1", "user_id": "user-1"}
        charge = client.v1.charges.retrieve(intent.latest_charge)
        receipt = httpx.get(charge.receipt_url)
        assert receipt.status_code == 200
        assert "ending in 4242" in receipt.text
        assert charge.paid
        assert charge.payment_method_details.card.last4 == "4242"
        assert charge.billing_details.name == "Ada"

        succeeded = [
            t
            for t in events_about(client, since, session.id, intent_id, charge.id)
            if t[0] not in ("payment_intent.created", "charge.failed", "payment_intent.payment_failed")
        ]
        assert succeeded == [
            ("payment_intent.succeeded", intent_id),
            ("charge.succeeded", charge.id),
            ("checkout.session.completed", session.id),
        ]
        failures = [t for t, _ in events_about(client, since, intent_id)]
        assert failures == ["payment_intent.created", "payment_intent.payment_failed", "payment_intent.succeeded"]

        again = httpx.get(session.url)
        assert again.status_code == 200
        assert "This payment is complete." in again.text
        assert post_card(session, "4242 4242 4242 4242").status_code == 409

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({"card_number": "4242 4242 4242 4241"}, "Your card number is incorrect."),
            (
                {"card_number": "4242424242424242", "card_expiry": "01 / 20"},
                "Your card's expiration date is in the past.",
            ),
            ({"card_number": "4242424242424242", "card_expiry": "13 / 39"}, "Your card's expiration month is invalid."),
            ({"card_number": "4242424242424242", "card_cvc": "12"}, "Your card's security code is invalid."),
            ({"card_number": "4242424242424242", "email": "nope"}, "Your email address is invalid."),
        ],
    )
    def test_malformed_card_details(self, client: stripe.StripeClient, form: dict[str, str], message: str) -> None:
        session = payment_session(client)
        response = httpx.post(session.url, data={"email": "buyer@example.com", **GOOD_FORM, **form})
        assert response.status_code == 400
        assert message.replace("'", "&#x27;") in response.text
        assert client.v1.checkout.sessions.retrieve(session.id).payment_intent is None

    def test_other_declines(self, client: stripe.StripeClient) -> None:
        session = payment_session(client)
        funds = post_card(session, "4000000000009995")
        assert funds.status_code == 402
        assert "Your card has insufficient funds." in funds.text
        live = post_card(session, "4012 8888 8888 1881")
        assert live.status_code == 402
        assert "used a non test card" in live.text

    def test_without_success_url_the_page_says_complete(self, client: stripe.StripeClient) -> None:
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {"currency": "eur", "unit_amount": 900, "product_data": {"name": "x"}},
                    }
                ],
            }
        )
        response = post_card(session, "5555 5555 5555 4444")
        assert response.status_code == 200
        assert "This payment is complete." in response.text

    def test_delayed_card(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        since = int(time.time())
        session = payment_session(client)
        response = post_card(session, "4000 0000 0000 1125")
        assert response.status_code == 303
        done = client.v1.checkout.sessions.retrieve(session.id)
        assert (done.status, done.payment_status) == ("complete", "unpaid")
        intent = client.v1.payment_intents.retrieve(done.payment_intent)
        assert intent.status == "processing"
        assert "processing" in httpx.get(session.url).text

        settled = sandbox.control("post", f"/checkout/sessions/{session.id}/settle")
        assert settled["payment_intent"]["status"] == "succeeded"
        assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
        charge_id = client.v1.payment_intents.retrieve(intent.id).latest_charge
        assert [t for t, _ in events_about(client, since, session.id, intent.id, charge_id)] == [
            "payment_intent.created",
            "payment_intent.processing",
            "charge.pending",
            "checkout.session.completed",
            "payment_intent.succeeded",
            "charge.succeeded",
            "checkout.session.async_payment_succeeded",
        ]
        with pytest.raises(stripe.InvalidRequestError):
            sandbox.control("post", f"/payment_intents/{intent.id}/settle")

    def test_delayed_failure(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        since = int(time.time())
        session = payment_session(client)
        assert post_card(session, "4000 0000 0000 2222").status_code == 303
        intent_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
        assert client.v1.payment_intents.retrieve(intent_id).status == "processing"
        sandbox.control("post", f"/payment_intents/{intent_id}/settle")
        assert client.v1.payment_intents.retrieve(intent_id).status == "requires_payment_method"
        assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"
        assert [t for t, _ in events_about(client, since, session.id)] == [
            "checkout.session.completed",
            "checkout.session.async_payment_failed",
        ]

    def test_settle_as_told(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        session = payment_session(client)
        sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4000000000001125")
        sandbox.control("post", f"/checkout/sessions/{session.id}/settle", outcome="failed")
        assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"


class TestSubscriptionMode:
    def test_paid_session_creates_an_active_subscription(
        self, sandbox: SandboxProcess, client: stripe.StripeClient
    ) -> None:
        since = int(time.time())
        price = recurring_price(client)
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": price.id, "quantity": 2}],
                "success_url": SUCCESS,
                "subscription_data": {"metadata": {"plan": "team"}},
                "client_reference_id": "user-2",
            }
        )
        assert session.amount_total == 5000
        assert session.customer is None
        page = httpx.get(session.url)
        assert "Subscribe $50.00" in page.text
        assert "/ month" in page.text
        assert post_card(session, "4000000000000002").status_code == 402
        response = post_card(session, "4242424242424242", email="team@example.com")
        assert response.status_code == 303

        done = client.v1.checkout.sessions.retrieve(session.id)
        assert (done.status, done.payment_status) == ("complete", "paid")
        assert done.payment_intent is None
        assert done.subscription
        assert done.invoice
        assert done.customer
        customer = client.v1.customers.retrieve(done.customer)
        assert customer.email == "team@example.com"
        subscription = client.v1.subscriptions.retrieve(done.subscription)
        assert (subscription.status, subscription.customer) == ("active", customer.id)
        assert subscription.metadata.to_dict() == {"plan": "team"}
        item = subscription["items"].data[0]
        assert (item.price.id, item.quantity) == (price.id, 2)
        assert item.current_period_end > item.current_period_start
        invoice = client.v1.invoices.retrieve(done.invoice)
        assert (invoice.status, invoice.amount_paid, invoice.amount_due, invoice.billing_reason) == (
            "paid",
            5000,
            5000,
            "subscription_create",
        )
        assert invoice.parent.subscription_details.subscription == subscription.id
        assert invoice.lines.data[0].amount == 5000
        assert [s.id for s in client.v1.subscriptions.list(params={"customer": customer.id}).data] == [subscription.id]
        assert [i.id for i in client.v1.invoices.list(params={"subscription": subscription.id}).data] == [invoice.id]

        types = [t for t, _ in events_about(client, since, session.id, subscription.id, invoice.id)]
        assert types == [
            "customer.subscription.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "checkout.session.completed",
        ]

    def test_trial(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        since = int(time.time())
        price = recurring_price(client)
        customer = client.v1.customers.create(params={"email": "trial@example.com"})
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price.id, "quantity": 1}],
                "subscription_data": {"trial_period_days": 14},
                "success_url": SUCCESS,
            }
        )
        assert "14-day free trial" in httpx.get(session.url).text
        result = sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4242424242424242")
        assert result["result"] == "succeeded"
        done = client.v1.checkout.sessions.retrieve(session.id)
        assert (done.status, done.payment_status) == ("complete", "no_payment_required")
        subscription = client.v1.subscriptions.retrieve(done.subscription)
        assert subscription.status == "trialing"
        assert subscription.trial_end - subscription.trial_start == 14 * 86400
        invoice = client.v1.invoices.retrieve(done.invoice)
        assert (invoice.status, invoice.amount_paid, invoice.total) == ("paid", 0, 0)
        types = [t for t, _ in events_about(client, since, session.id, subscription.id, invoice.id)]
        assert "invoice.paid" in types
        assert types[-1] == "checkout.session.completed"
        assert client.v1.charges.list(params={"customer": customer.id}).data == []

    def test_delayed_payment_activates_later(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        price = recurring_price(client)
        session = client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": price.id, "quantity": 1}], "success_url": SUCCESS}
        )
        sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4000000000001125", email="d@example.com")
        done = client.v1.checkout.sessions.retrieve(session.id)
        assert done.payment_status == "unpaid"
        assert client.v1.subscriptions.retrieve(done.subscription).status == "incomplete"
        assert client.v1.invoices.retrieve(done.invoice).status == "open"
        sandbox.control("post", f"/checkout/sessions/{session.id}/settle")
        assert client.v1.subscriptions.retrieve(done.subscription).status == "active"
        assert client.v1.invoices.retrieve(done.invoice).status == "paid"
        update = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
        assert update.data.object.id == done.subscription
        assert update.data.previous_attributes.to_dict() == {"status": "incomplete"}

    def test_cancel(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        price = recurring_price(client)
        session = client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": price.id, "quantity": 1}], "success_url": SUCCESS}
        )
        sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4242424242424242", email="c@example.com")
        subscription_id = client.v1.checkout.sessions.retrieve(session.id).subscription
        at_end = client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True})
        assert at_end.cancel_at_period_end is True
        assert at_end.cancel_at is not None
        canceled = client.v1.subscriptions.cancel(subscription_id)
        assert canceled.status == "canceled"
        assert canceled.ended_at is not None
        deleted = client.v1.events.list(params={"type": "customer.subscription.deleted", "limit": 1}).data[0]
        assert deleted.data.object.id == subscription_id


class TestExpire:
    def test_expire_an_open_session(self, sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
        since = int(time.time())
        session = payment_session(client)
        post_card(session, "4000000000000002")
        intent_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
        expired = client.v1.checkout.sessions.expire(session.id)
        assert expired.status == "expired"
        assert client.v1.payment_intents.retrieve(intent_id).status == "canceled"
        assert [t for t, _ in events_about(client, since, session.id)] == ["checkout.session.expired"]
        assert "expired" in httpx.get(session.url).text
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.checkout.sessions.expire(session.id)
        with pytest.raises(stripe.InvalidRequestError):
            sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4242424242424242")
        assert [s.id for s in client.v1.checkout.sessions.list(params={"status": "expired", "limit": 100}).data].count(
            session.id
        ) == 1

"""Payments' Stripe adapter against the local sandbox, and against real Stripe test mode when a key is given.

Set STRIPE_TEST_SECRET_KEY=sk_test_... to run every test here against
api.stripe.com as well; without it those runs are skipped, and the end of the
test run says so. A live key is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import stripe

from payments_svc.stripe_provider import CheckoutRequest, StripePaymentProvider
from svckit.stripe_client import ProviderRejected, StripeSettings


@dataclass(frozen=True)
class Stripe:
    provider: StripePaymentProvider
    client: stripe.StripeClient


@pytest.fixture
def stripe_api(stripe_settings: StripeSettings) -> Stripe:
    client = stripe.StripeClient(stripe_settings.secret_key, base_addresses={"api": stripe_settings.api_base})
    return Stripe(StripePaymentProvider(stripe_settings), client)


def request(customer_id: str) -> CheckoutRequest:
    return CheckoutRequest(
        customer_id=customer_id,
        user_id="provider-test",
        payment_id="pay_" + uuid.uuid4().hex,
        package_id="credits-100",
        package_name="100 credits",
        credits=100,
        currency="usd",
        amount_minor=500,
        success_url="https://example.com/ok",
        cancel_url="https://example.com/cancel",
    )


def test_a_customer_is_created_once_per_key(stripe_api: Stripe) -> None:
    key = f"customer-test-{uuid.uuid4().hex}"
    first = stripe_api.provider.create_customer("provider-test", idempotency_key=key)
    again = stripe_api.provider.create_customer("provider-test", idempotency_key=key)
    assert first == again
    assert first.startswith("cus_")


def test_a_checkout_session_carries_the_payment_in_its_metadata(stripe_api: Stripe) -> None:
    customer = stripe_api.provider.create_customer("provider-test", idempotency_key=uuid.uuid4().hex)
    wanted = request(customer)
    created = stripe_api.provider.create_checkout_session(wanted, idempotency_key=uuid.uuid4().hex)
    assert created.id.startswith("cs_test_")
    assert created.url.startswith("http")
    session = stripe_api.client.v1.checkout.sessions.retrieve(created.id)
    assert session.metadata is not None
    assert session.metadata.to_dict() == wanted.metadata()
    assert session.amount_total == 500
    assert session.mode == "payment"


def test_a_paid_intent_refunds_in_parts_and_never_past_what_was_paid(stripe_api: Stripe) -> None:
    customer = stripe_api.provider.create_customer("provider-test", idempotency_key=uuid.uuid4().hex)
    wanted = request(customer)
    intent = stripe_api.provider.create_payment_intent(wanted, idempotency_key=uuid.uuid4().hex)
    assert intent.client_secret.startswith(intent.id)
    confirmed = stripe_api.client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa", "return_url": "https://example.com/done"}
    )
    assert confirmed.status == "succeeded"
    metadata, amount, currency = stripe_api.provider.payment_intent_metadata(intent.id)
    assert (dict(metadata), amount, currency) == (wanted.metadata(), 500, "usd")

    first = stripe_api.provider.refund(intent.id, 200, "requested_by_customer", idempotency_key=uuid.uuid4().hex)
    assert (first.amount_minor, first.charge_amount_refunded) == (200, 200)
    rest = stripe_api.provider.refund(intent.id, 300, "", idempotency_key=uuid.uuid4().hex)
    assert rest.charge_amount_refunded == 500
    with pytest.raises(ProviderRejected):
        stripe_api.provider.refund(intent.id, 1, "", idempotency_key=uuid.uuid4().hex)


def test_a_declined_card_is_a_card_error(stripe_api: Stripe) -> None:
    customer = stripe_api.provider.create_customer("provider-test", idempotency_key=uuid.uuid4().hex)
    intent = stripe_api.provider.create_payment_intent(request(customer), idempotency_key=uuid.uuid4().hex)
    with pytest.raises(stripe.CardError):
        stripe_api.client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_chargeDeclined", "return_url": "https://example.com/done"}
        )

"""Stripe, behind the `PaymentProvider` port: one StripeClient per service, built from settings.

Every POST carries an idempotency key derived from the caller's, so a retried
call never creates a second customer, session, intent or refund. Stripe's
errors become the service's: a refused request is FAILED_PRECONDITION (reason
PAYMENT_PROVIDER_REJECTED, Stripe's code in the metadata); a network failure,
rate limit or Stripe outage is UNAVAILABLE; a bad API key is INTERNAL (an
operator's problem, logged, never shown).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from svckit.stripe_client import StripeSettings, call_stripe, make_client

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class CheckoutRequest:
    customer_id: str
    user_id: str
    payment_id: str
    package_id: str
    package_name: str
    credits: int
    currency: str
    amount_minor: int
    success_url: str
    cancel_url: str

    def metadata(self) -> dict[str, str]:
        return {
            "payment_id": self.payment_id,
            "user_id": self.user_id,
            "package_id": self.package_id,
            "credits": str(self.credits),
        }


@dataclass(frozen=True)
class CreatedSession:
    id: str
    url: str
    payment_intent_id: str | None


@dataclass(frozen=True)
class CreatedIntent:
    id: str
    client_secret: str


@dataclass(frozen=True)
class CreatedRefund:
    id: str
    status: str
    amount_minor: int
    # The charge's refunded total after this refund.
    charge_amount_refunded: int
    charge_id: str


class PaymentProvider(Protocol):
    def create_customer(self, user_id: str, *, idempotency_key: str) -> str: ...

    def create_checkout_session(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedSession: ...

    def create_payment_intent(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedIntent: ...

    def refund(
        self, payment_intent_id: str, amount_minor: int, reason: str, *, idempotency_key: str
    ) -> CreatedRefund: ...

    def payment_intent_metadata(self, payment_intent_id: str) -> tuple[Mapping[str, str], int, str]: ...


class StripePaymentProvider:
    def __init__(self, settings: StripeSettings, *, test_clocks: bool = False) -> None:
        self.client = make_client(settings)
        self.test_clocks = test_clocks

    def create_customer(self, user_id: str, *, idempotency_key: str) -> str:
        params: dict[str, Any] = {"metadata": {"user_id": user_id}, "description": f"user {user_id}"}
        if self.test_clocks:
            clock = _call(
                lambda: self.client.v1.test_helpers.test_clocks.create(
                    params={"frozen_time": int(time.time()), "name": f"user {user_id}"[:300]},
                    options={"idempotency_key": f"{idempotency_key}-clock"},
                )
            )
            params["test_clock"] = clock.id
        customer = _call(
            lambda: self.client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    def create_checkout_session(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedSession:
        session = _call(
            lambda: self.client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "customer": request.customer_id,
                    "client_reference_id": request.user_id,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": request.currency,
                                "unit_amount": request.amount_minor,
                                "product_data": {"name": request.package_name},
                            },
                        }
                    ],
                    "success_url": request.success_url,
                    "cancel_url": request.cancel_url,
                    "metadata": request.metadata(),
                    "payment_intent_data": {"metadata": request.metadata()},
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        payment_intent = session.payment_intent
        return CreatedSession(
            id=str(session.id),
            url=str(session.url),
            payment_intent_id=payment_intent if isinstance(payment_intent, str) else None,
        )

    def create_payment_intent(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedIntent:
        intent = _call(
            lambda: self.client.v1.payment_intents.create(
                params={
                    "amount": request.amount_minor,
                    "currency": request.currency,
                    "customer": request.customer_id,
                    "description": request.package_name,
                    "metadata": request.metadata(),
                    "automatic_payment_methods": {"enabled": True},
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return CreatedIntent(id=str(intent.id), client_secret=str(intent.client_secret))

    def refund(self, payment_intent_id: str, amount_minor: int, reason: str, *, idempotency_key: str) -> CreatedRefund:
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "amount": amount_minor}
        if reason:
            params["reason"] = reason
        refund = _call(
            lambda: self.client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})  # type: ignore[arg-type]
        )
        charge_id = str(refund.charge if isinstance(refund.charge, str) else refund.charge.id)  # type: ignore[union-attr]
        charge = _call(lambda: self.client.v1.charges.retrieve(charge_id))
        return CreatedRefund(
            id=str(refund.id),
            status=str(refund.status),
            amount_minor=int(refund.amount),
            charge_amount_refunded=int(charge.amount_refunded),
            charge_id=charge_id,
        )

    def payment_intent_metadata(self, payment_intent_id: str) -> tuple[Mapping[str, str], int, str]:
        intent = _call(lambda: self.client.v1.payment_intents.retrieve(payment_intent_id))
        raw = intent.metadata.to_dict() if intent.metadata is not None else {}
        metadata = {str(key): str(value) for key, value in raw.items()}
        return metadata, int(intent.amount), str(intent.currency)


def _call(request: Callable[[], T]) -> T:
    return call_stripe(request, key_setting="PAYMENTS_STRIPE_SECRET_KEY")

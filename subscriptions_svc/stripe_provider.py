"""Stripe, behind the `SubscriptionProvider` port: products and prices, checkout, subscriptions, the portal.

Every POST carries an idempotency key derived from the caller's (or, for the
plan sync, from what it creates), so a retried call never creates anything
twice. Every call that returns a subscription returns it as a `Snapshot`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import stripe

from subscriptions_svc.domain import Snapshot
from subscriptions_svc.stripe_objects import subscription_snapshot
from svckit.stripe_client import ProviderRejected, StripeSettings, call_stripe, make_client

T = TypeVar("T")
KEY_SETTING = "SUBSCRIPTIONS_STRIPE_SECRET_KEY"


@dataclass(frozen=True)
class StripePrice:
    id: str
    lookup_key: str | None
    product: str
    currency: str
    interval: str | None
    unit_amount: int | None
    active: bool


@dataclass(frozen=True)
class CheckoutRequest:
    customer_id: str
    price_id: str
    quantity: int
    trial_days: int
    success_url: str
    cancel_url: str
    expires_at: int
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class CreatedCheckout:
    id: str
    url: str


@dataclass(frozen=True)
class CreatedSubscription:
    snapshot: Snapshot
    client_secret: str


class SubscriptionProvider(Protocol):
    # Plans.
    def product(self, product_id: str) -> Mapping[str, Any] | None: ...
    def create_product(self, product_id: str, name: str, *, idempotency_key: str) -> None: ...
    def rename_product(self, product_id: str, name: str) -> None: ...
    def prices_by_lookup_key(self, lookup_keys: Sequence[str]) -> dict[str, StripePrice]: ...
    def create_price(
        self,
        *,
        product_id: str,
        lookup_key: str,
        currency: str,
        interval: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> StripePrice: ...
    def retire_price(self, price_id: str) -> None: ...

    # Subscriptions.
    def create_checkout_session(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedCheckout: ...
    def expire_checkout_session(self, session_id: str) -> bool: ...
    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        quantity: int,
        trial_days: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> CreatedSubscription: ...
    def subscription(self, stripe_subscription_id: str) -> Snapshot: ...
    def update_subscription(
        self, stripe_subscription_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> Snapshot: ...
    def cancel_subscription(self, stripe_subscription_id: str, comment: str, *, idempotency_key: str) -> Snapshot: ...
    def resume_subscription(self, stripe_subscription_id: str, *, idempotency_key: str) -> Snapshot: ...
    def create_portal_session(self, customer_id: str, return_url: str) -> str: ...
    def customer_email(self, customer_id: str) -> str | None: ...


class StripeSubscriptionProvider:
    def __init__(self, settings: StripeSettings) -> None:
        self.client = make_client(settings)

    # --- plans -------------------------------------------------------------------------

    def product(self, product_id: str) -> Mapping[str, Any] | None:
        def retrieve() -> Mapping[str, Any] | None:
            try:
                return self.client.v1.products.retrieve(product_id).to_dict()
            except stripe.InvalidRequestError as error:
                if error.code == "resource_missing":
                    return None
                raise

        return _call(retrieve)

    def create_product(self, product_id: str, name: str, *, idempotency_key: str) -> None:
        _call(
            lambda: self.client.v1.products.create(
                params={"id": product_id, "name": name, "metadata": {"managed_by": "billing-plan-sync"}},
                options={"idempotency_key": idempotency_key},
            )
        )

    def rename_product(self, product_id: str, name: str) -> None:
        _call(lambda: self.client.v1.products.update(product_id, params={"name": name}))

    def prices_by_lookup_key(self, lookup_keys: Sequence[str]) -> dict[str, StripePrice]:
        found: dict[str, StripePrice] = {}
        for start in range(0, len(lookup_keys), 10):  # Stripe takes up to 10 lookup keys per request
            batch = list(lookup_keys[start : start + 10])
            page = _call(functools.partial(self.client.v1.prices.list, params={"lookup_keys": batch, "limit": 100}))
            for price in page.data:
                record = _price(price.to_dict())
                if record.lookup_key:
                    found[record.lookup_key] = record
        return found

    def create_price(
        self,
        *,
        product_id: str,
        lookup_key: str,
        currency: str,
        interval: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> StripePrice:
        price = _call(
            lambda: self.client.v1.prices.create(
                params={
                    "product": product_id,
                    "currency": currency,
                    "unit_amount": amount_minor,
                    "recurring": {"interval": interval},
                    "lookup_key": lookup_key,
                    # The key moves from the price this one replaces, in the same request.
                    "transfer_lookup_key": True,
                    "metadata": dict(metadata),
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return _price(price.to_dict())

    def retire_price(self, price_id: str) -> None:
        _call(lambda: self.client.v1.prices.update(price_id, params={"active": False}))

    # --- subscriptions -------------------------------------------------------------------

    def create_checkout_session(self, request: CheckoutRequest, *, idempotency_key: str) -> CreatedCheckout:
        subscription_data: dict[str, Any] = {"metadata": dict(request.metadata)}
        if request.trial_days:
            subscription_data["trial_period_days"] = request.trial_days
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": request.customer_id,
            "client_reference_id": request.metadata.get("user_id"),
            "line_items": [{"price": request.price_id, "quantity": request.quantity}],
            "allow_promotion_codes": True,
            "subscription_data": subscription_data,
            "metadata": dict(request.metadata),
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": request.expires_at,
        }
        session = _call(
            lambda: self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return CreatedCheckout(id=str(session.id), url=str(session.url))

    def expire_checkout_session(self, session_id: str) -> bool:
        """Close an open checkout; False when it can no longer be (completed or expired already)."""
        session = _call(lambda: self.client.v1.checkout.sessions.retrieve(session_id))
        if session.status == "open":
            try:
                _call(lambda: self.client.v1.checkout.sessions.expire(session_id))
                return True
            except ProviderRejected:
                # Closed meanwhile (paid, or expired by a concurrent request): ask again what it is.
                session = _call(lambda: self.client.v1.checkout.sessions.retrieve(session_id))
        return session.status == "expired"

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        quantity: int,
        trial_days: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> CreatedSubscription:
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": [{"price": price_id, "quantity": quantity}],
            "payment_behavior": "default_incomplete",
            "payment_settings": {"save_default_payment_method": "on_subscription"},
            "metadata": dict(metadata),
            "expand": ["latest_invoice.confirmation_secret"],
        }
        if trial_days:
            params["trial_period_days"] = trial_days
        created = _call(
            lambda: self.client.v1.subscriptions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        raw = created.to_dict()
        invoice = raw.get("latest_invoice") if isinstance(raw.get("latest_invoice"), Mapping) else {}
        secret = (invoice or {}).get("confirmation_secret") or {}
        client_secret = secret.get("client_secret") if isinstance(secret, Mapping) else None
        return CreatedSubscription(subscription_snapshot(raw), str(client_secret or ""))

    def subscription(self, stripe_subscription_id: str) -> Snapshot:
        found = _call(lambda: self.client.v1.subscriptions.retrieve(stripe_subscription_id))
        return subscription_snapshot(found.to_dict())

    def update_subscription(
        self, stripe_subscription_id: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> Snapshot:
        updated = _call(
            lambda: self.client.v1.subscriptions.update(
                stripe_subscription_id,
                params=dict(params),  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return subscription_snapshot(updated.to_dict())

    def cancel_subscription(self, stripe_subscription_id: str, comment: str, *, idempotency_key: str) -> Snapshot:
        params: dict[str, Any] = {"cancellation_details": {"comment": comment}} if comment else {}
        canceled = _call(
            lambda: self.client.v1.subscriptions.cancel(
                stripe_subscription_id,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return subscription_snapshot(canceled.to_dict())

    def resume_subscription(self, stripe_subscription_id: str, *, idempotency_key: str) -> Snapshot:
        resumed = _call(
            lambda: self.client.v1.subscriptions.resume(
                stripe_subscription_id,
                params={"billing_cycle_anchor": "unchanged"},  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return subscription_snapshot(resumed.to_dict())

    def create_portal_session(self, customer_id: str, return_url: str) -> str:
        session = _call(
            lambda: self.client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            )
        )
        return str(session.url)

    def customer_email(self, customer_id: str) -> str | None:
        customer = _call(lambda: self.client.v1.customers.retrieve(customer_id))
        email = getattr(customer, "email", None)
        return str(email) if email else None


def _price(raw: Mapping[str, Any]) -> StripePrice:
    recurring = raw.get("recurring") if isinstance(raw.get("recurring"), Mapping) else None
    product = raw.get("product")
    return StripePrice(
        id=str(raw["id"]),
        lookup_key=raw.get("lookup_key") or None,
        product=str(product["id"] if isinstance(product, Mapping) else product),
        currency=str(raw.get("currency")),
        interval=str(recurring["interval"]) if recurring else None,
        unit_amount=raw.get("unit_amount") if isinstance(raw.get("unit_amount"), int) else None,
        active=bool(raw.get("active")),
    )


def _call(request: Callable[[], T]) -> T:
    return call_stripe(request, key_setting=KEY_SETTING)

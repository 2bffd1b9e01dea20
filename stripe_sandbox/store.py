"""The sandbox's objects, in memory: Stripe JSON objects by id, plus what Stripe keeps but does not show.

Objects are stored as the JSON Stripe would answer and changed in place; every
answer and every event gets a deep copy. The store itself is not thread-safe:
`Sandbox.lock` guards it (see sandbox.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stripe_sandbox.cards import Behaviour, Card
from stripe_sandbox.errors import resource_missing

Obj = dict[str, Any]

# How an object type is named in "No such ..." messages.
LABELS = {
    "checkout.session": "checkout.session",
    "billing_portal.session": "billing_portal.session",
    "webhook_endpoint": "webhook endpoint",
    "test_helpers.test_clock": "test clock",
    "invoiceitem": "invoiceitem",
}


@dataclass
class Retries:
    """An invoice's automatic payment attempts after its first failure (Smart-Retries-like schedule)."""

    first_failure: int
    automatic_attempts: int = 0


@dataclass
class PaymentLinks:
    """What a payment intent was created for, so that its outcome reaches the session or invoice."""

    checkout_session: str | None = None
    invoice: str | None = None
    # Set while a delayed payment is processing: how it will settle.
    pending: Behaviour | None = None


@dataclass
class Store:
    objects: dict[str, Obj] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Checkout session id -> its line items (objects "item"), served by /line_items and expand[]=line_items.
    session_lines: dict[str, list[Obj]] = field(default_factory=dict)
    # Checkout session id -> subscription_data given at creation (trial days, metadata, description).
    session_subscription_data: dict[str, Obj] = field(default_factory=dict)
    # Checkout session id -> payment_intent_data given at creation (metadata, description, ...).
    session_intent_data: dict[str, Obj] = field(default_factory=dict)
    # Checkout session id -> the payment intent paying it (Stripe shows it on the session in mode payment only).
    session_intents: dict[str, str] = field(default_factory=dict)
    # Checkout session id -> the customer it made (mode subscription without `customer`).
    session_made_customer: dict[str, str] = field(default_factory=dict)
    # Payment intent id -> what it pays for.
    intent_links: dict[str, PaymentLinks] = field(default_factory=dict)
    # Payment method id -> the test card behind it (brand, last4 and what paying with it does).
    method_cards: dict[str, Card] = field(default_factory=dict)
    # Webhook endpoint id -> signing secret (shown by the API only at creation, as Stripe does).
    endpoint_secrets: dict[str, str] = field(default_factory=dict)
    # Lookup key -> price id.
    lookup_keys: dict[str, str] = field(default_factory=dict)
    # Invoice id -> the payment intent collecting it (Stripe shows it through `payments` and `confirmation_secret`).
    invoice_intents: dict[str, str] = field(default_factory=dict)
    # Invoice id -> its invoice_payment ids, oldest first.
    invoice_payments: dict[str, list[str]] = field(default_factory=dict)
    # Invoice id -> its failed payments so far, which decide the next automatic attempt.
    retries: dict[str, Retries] = field(default_factory=dict)
    # (subscription id, notice, boundary): `trial_will_end` and `invoice.upcoming` already sent.
    notices: set[tuple[str, str, int]] = field(default_factory=set)

    def add(self, obj: Obj) -> Obj:
        object_id = obj["id"]
        self.objects[object_id] = obj
        self.order[obj["object"]].append(object_id)
        return obj

    def get(self, kind: str, object_id: str) -> Obj | None:
        obj = self.objects.get(object_id)
        return obj if obj is not None and obj["object"] == kind else None

    def require(self, kind: str, object_id: str, *, param: str = "id") -> Obj:
        obj = self.get(kind, object_id)
        if obj is None:
            raise resource_missing(LABELS.get(kind, kind), object_id, param=param)
        return obj

    def find(self, object_id: str) -> Obj | None:
        return self.objects.get(object_id)

    def remove(self, kind: str, object_id: str) -> None:
        if self.get(kind, object_id) is not None:
            del self.objects[object_id]
            self.order[kind].remove(object_id)

    def all(self, kind: str) -> list[Obj]:
        """Oldest first."""
        return [self.objects[object_id] for object_id in self.order.get(kind, [])]

    def select(self, kind: str, keep: Callable[[Obj], bool]) -> list[Obj]:
        return [obj for obj in self.all(kind) if keep(obj)]

    def links(self, intent_id: str) -> PaymentLinks:
        return self.intent_links.setdefault(intent_id, PaymentLinks())

    def count(self, kinds: Iterable[str]) -> dict[str, int]:
        return {kind: len(self.order.get(kind, [])) for kind in kinds}

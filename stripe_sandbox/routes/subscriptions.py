"""/v1/subscriptions: create, retrieve, list, update, cancel, `/{id}/resume` (subscription_changes.py).

A subscription of a customer on a test clock renews as the clock advances (billing_cycle.py);
one of a customer without a clock never renews by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import billing, subscription_changes
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid
from stripe_sandbox.params import (
    Array,
    Boolean,
    Choice,
    Field,
    Hash,
    Integer,
    IntegerOr,
    Metadata,
    Params,
    Text,
)
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve

Obj = dict[str, Any]
STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
FEEDBACK = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
DETAILS = Hash({"comment": Text(5000), "feedback": Choice(FEEDBACK)})
PRORATION = Choice(("always_invoice", "create_prorations", "none"))
PAYMENT_SETTINGS = Hash(
    {
        "save_default_payment_method": Choice(("off", "on_subscription")),
        "payment_method_types": Array(Text(100)),
    }
)
TRIAL_SETTINGS = Hash({"end_behavior": Hash({"missing_payment_method": Choice(("cancel", "create_invoice", "pause"))})})
SHARED: dict[str, Field] = {
    "metadata": Metadata(),
    "description": Text(500),
    "default_payment_method": Text(),
    "cancel_at_period_end": Boolean(),
    "cancel_at": IntegerOr(("max_period_end", "min_period_end")),
    "proration_behavior": PRORATION,
    "payment_settings": PAYMENT_SETTINGS,
    "trial_settings": TRIAL_SETTINGS,
    "trial_end": IntegerOr(("now",)),
    "off_session": Boolean(),
    "collection_method": Choice(("charge_automatically",)),
}
CREATE_FIELDS: dict[str, Field] = {
    **SHARED,
    "customer": Text(),
    "currency": Text(3),
    "items": Array(Hash({"price": Text(), "quantity": Integer(minimum=0), "metadata": Metadata()}), max_items=20),
    "payment_behavior": Choice(("allow_incomplete", "default_incomplete", "error_if_incomplete")),
    "trial_period_days": Integer(minimum=0, maximum=730),
}
UPDATE_FIELDS: dict[str, Field] = {
    **SHARED,
    "items": Array(
        Hash(
            {
                "id": Text(),
                "price": Text(),
                "quantity": Integer(minimum=0),
                "deleted": Boolean(),
                "metadata": Metadata(),
                "clear_usage": Boolean(),
            }
        ),
        max_items=20,
    ),
    "payment_behavior": Choice(
        ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
    ),
    "proration_date": Integer(minimum=0),
    "billing_cycle_anchor": Choice(("now", "unchanged")),
    "pause_collection": Hash(
        {"behavior": Choice(("keep_as_draft", "mark_uncollectible", "void")), "resumes_at": Integer(minimum=0)}
    ),
    "cancellation_details": DETAILS,
}
RESUME_FIELDS: dict[str, Field] = {
    "billing_cycle_anchor": Choice(("now", "unchanged")),
    "proration_behavior": PRORATION,
    "proration_date": Integer(minimum=0),
}


def create(call: Call) -> Obj:
    return subscription_changes.create(call.sandbox, call.params)


def update(call: Call) -> Obj:
    subscription = call.sandbox.store.require("subscription", call.path["id"])
    return subscription_changes.update(call.sandbox, subscription, call.params)


def resume(call: Call) -> Obj:
    subscription = call.sandbox.store.require("subscription", call.path["id"])
    return subscription_changes.resume(call.sandbox, subscription, call.params)


def cancel(call: Call) -> Obj:
    sb = call.sandbox
    subscription = sb.store.require("subscription", call.path["id"])
    if subscription["status"] in ("canceled", "incomplete_expired"):
        raise invalid(
            f"No such subscription: '{subscription['id']}' (it is already canceled).",
            code="resource_missing",
        )
    details = call.params.get("cancellation_details") or {}
    return billing.cancel_subscription(
        sb, subscription, comment=details.get("comment"), feedback=details.get("feedback")
    )


def _keep(subscription: Obj, p: Mapping[str, Any]) -> bool:
    status = p.get("status")
    if status is None:
        status_ok = subscription["status"] != "canceled"
    elif status == "all":
        status_ok = True
    elif status == "ended":
        status_ok = subscription["status"] in ("canceled", "incomplete_expired")
    else:
        status_ok = subscription["status"] == status
    price = p.get("price")
    prices = {item["price"]["id"] for item in subscription["items"]["data"]}
    return (
        status_ok
        and matches(p, "customer", subscription["customer"])
        and matches(p, "test_clock", subscription["test_clock"])
        and (price is None or price in prices)
    )


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/subscriptions", create, Params(CREATE_FIELDS)),
        Endpoint(
            "GET",
            "/v1/subscriptions",
            listing("subscription", "/v1/subscriptions", _keep),
            list_params({"customer": Text(), "price": Text(), "status": Choice(STATUSES), "test_clock": Text()}),
        ),
        Endpoint("GET", "/v1/subscriptions/{id}", retrieve("subscription")),
        Endpoint("POST", "/v1/subscriptions/{id}", update, Params(UPDATE_FIELDS)),
        Endpoint("POST", "/v1/subscriptions/{id}/resume", resume, Params(RESUME_FIELDS)),
        Endpoint(
            "DELETE",
            "/v1/subscriptions/{id}",
            cancel,
            Params({"cancellation_details": DETAILS, "invoice_now": Boolean(), "prorate": Boolean()}),
        ),
    ]

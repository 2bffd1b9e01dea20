"""/v1/subscriptions: retrieve, list, update (`cancel_at_period_end`, `metadata`, `description`), cancel.

Subscriptions are created by Checkout Sessions in mode `subscription`; the sandbox
does not bill renewals (no clock advances its periods).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import billing
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid
from stripe_sandbox.params import Boolean, Choice, Field, Hash, Metadata, Params, Text, apply_metadata
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


def update(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    subscription = sb.store.require("subscription", call.path["id"])
    changes: dict[str, Any] = {}
    if p.get("cancel_at_period_end") is not None:
        if subscription["status"] == "canceled":
            raise invalid("A canceled subscription can only update its metadata and description.")
        details = p.get("cancellation_details") or {}
        changes.update(
            billing.cancel_at_period_end(
                sb,
                subscription,
                bool(p["cancel_at_period_end"]),
                comment=details.get("comment"),
                feedback=details.get("feedback"),
            )
        )
    if "metadata" in p:
        changes["metadata"] = apply_metadata(subscription["metadata"], p["metadata"])
    if "description" in p:
        changes["description"] = p["description"]
    return sb.update("customer.subscription.updated", subscription, changes)


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
    return status_ok and matches(p, "customer", subscription["customer"]) and (price is None or price in prices)


def endpoints() -> list[Endpoint]:
    fields: dict[str, Field] = {
        "cancel_at_period_end": Boolean(),
        "cancellation_details": DETAILS,
        "metadata": Metadata(),
        "description": Text(500),
    }
    return [
        Endpoint(
            "GET",
            "/v1/subscriptions",
            listing("subscription", "/v1/subscriptions", _keep),
            list_params({"customer": Text(), "price": Text(), "status": Choice(STATUSES)}),
        ),
        Endpoint("GET", "/v1/subscriptions/{id}", retrieve("subscription")),
        Endpoint("POST", "/v1/subscriptions/{id}", update, Params(fields)),
        Endpoint(
            "DELETE",
            "/v1/subscriptions/{id}",
            cancel,
            Params({"cancellation_details": DETAILS, "invoice_now": Boolean(), "prorate": Boolean()}),
        ),
    ]

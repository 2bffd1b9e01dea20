"""/v1/refunds: create (`payment_intent` or `charge`, `amount`, `reason`, `metadata`), retrieve, list.

A refund succeeds at once: the charge's `amount_refunded` and `refunded` change,
and `refund.created` and `charge.refunded` (data.object: the charge) are sent.
More than what is left to refund is refused with Stripe's 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import payments
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.params import Choice, Field, Integer, Metadata, Params, Text, apply_metadata
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve

Obj = dict[str, Any]

FIELDS: dict[str, Field] = {
    "payment_intent": Text(),
    "charge": Text(),
    "amount": Integer(minimum=1),
    "reason": Choice(payments.REFUND_REASONS),
    "metadata": Metadata(),
}


def create(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    charge = payments.refundable_charge(sb, charge_id=p.get("charge"), intent_id=p.get("payment_intent"))
    return payments.refund(
        sb, charge, amount=p.get("amount"), reason=p.get("reason"), metadata=apply_metadata({}, p.get("metadata"))
    )


def update(call: Call) -> Obj:
    sb = call.sandbox
    refund = sb.store.require("refund", call.path["id"])
    if "metadata" not in call.params:
        return refund
    return sb.update(
        "refund.updated", refund, {"metadata": apply_metadata(refund["metadata"], call.params["metadata"])}
    )


def _keep(refund: Obj, p: Mapping[str, Any]) -> bool:
    return matches(p, "charge", refund["charge"]) and matches(p, "payment_intent", refund["payment_intent"])


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("POST", "/v1/refunds", create, Params(FIELDS)),
        Endpoint(
            "GET",
            "/v1/refunds",
            listing("refund", "/v1/refunds", _keep),
            list_params({"charge": Text(), "payment_intent": Text()}),
        ),
        Endpoint("GET", "/v1/refunds/{id}", retrieve("refund")),
        Endpoint("POST", "/v1/refunds/{id}", update, Params({"metadata": Metadata()})),
    ]

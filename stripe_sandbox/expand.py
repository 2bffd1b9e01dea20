"""`expand[]`: replace ids in an answer with the objects they name, as Stripe does (up to four levels).

`expand[]=payment_intent` on a Checkout Session, `expand[]=latest_invoice.confirmation_secret` and
`latest_invoice.payments` (invoice fields Stripe shows only when expanded), `expand[]=data.customer` on a
list, `expand[]=payment_intent.latest_charge`, and `expand[]=line_items` on a
Checkout Session, whose line items are not part of the object otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from stripe_sandbox import objects
from stripe_sandbox.errors import invalid
from stripe_sandbox.store import Store

Obj = dict[str, Any]
MAX_LEVELS = 4
# Invoice fields Stripe answers only when asked for with expand[].
INVOICE_INCLUDABLE = ("confirmation_secret", "payments")


def _invoice_field(store: Store, invoice: Obj, name: str) -> Obj | None:
    if name == "payments":
        payments = [
            copy.deepcopy(store.require("invoice_payment", p)) for p in store.invoice_payments.get(invoice["id"], [])
        ]
        return objects.list_object(list(reversed(payments)), f"/v1/invoice_payments?invoice={invoice['id']}")
    intent = store.get("payment_intent", store.invoice_intents.get(invoice["id"], ""))
    if intent is None or invoice["status"] not in ("open", "paid", "uncollectible"):
        return None
    return {"client_secret": intent["client_secret"], "type": "payment_intent"}


def expand(store: Store, answer: Obj, paths: Sequence[str]) -> Obj:
    result = copy.deepcopy(answer)
    for path in paths:
        parts = path.split(".")
        levels = len(parts) - (1 if parts[0] == "data" and result.get("object") == "list" else 0)
        if levels > MAX_LEVELS:
            raise invalid(
                f"You cannot expand more than {MAX_LEVELS} levels of a property. Property: {path}", param="expand"
            )
        _expand(store, result, parts, path)
    return result


def _expand(store: Store, node: Obj, parts: Sequence[str], path: str) -> None:
    head, rest = parts[0], parts[1:]
    if head == "data" and node.get("object") == "list" and rest:
        for item in node["data"]:
            _expand(store, item, rest, path)
        return
    if head in INVOICE_INCLUDABLE and node.get("object") == "invoice" and head not in node:
        node[head] = _invoice_field(store, node, head)
    elif head == "line_items" and node.get("object") == "checkout.session":
        lines = store.session_lines.get(node["id"], [])
        node["line_items"] = objects.list_object(copy.deepcopy(lines), f"/v1/checkout/sessions/{node['id']}/line_items")
    elif head not in node:
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    value = node[head]
    if isinstance(value, str):
        target = store.find(value)
        if target is None:
            raise invalid(f"This property cannot be expanded ({path}): {value} is not known here.", param="expand")
        node[head] = value = copy.deepcopy(target)
    elif value is not None and not isinstance(value, dict):
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    if value is not None and rest:
        _expand(store, value, rest, path)

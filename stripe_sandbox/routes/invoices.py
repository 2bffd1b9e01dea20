"""/v1/invoices: retrieve, list (filters `customer`, `subscription`, `status`), `/{id}/lines`,
`/{id}/finalize`, `/{id}/pay`, `/{id}/void`, `/{id}/mark_uncollectible`.

`pay` charges an open invoice (a draft is finalized first) with `payment_method` or the default
one (collection.py); a decline answers Stripe's 402 card_error after `invoice.payment_failed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stripe_sandbox import collection, invoicing, lists, subscription_changes
from stripe_sandbox.api import Call, Endpoint
from stripe_sandbox.errors import invalid
from stripe_sandbox.params import Boolean, Choice, Field, Params, Text
from stripe_sandbox.payments import Result
from stripe_sandbox.routes.common import list_params, listing, matches, retrieve
from stripe_sandbox.routes.payment_methods import resolve

Obj = dict[str, Any]


def _keep(invoice: Obj, p: Mapping[str, Any]) -> bool:
    return (
        matches(p, "customer", invoice["customer"])
        and matches(p, "subscription", invoice["subscription"])
        and matches(p, "status", invoice["status"])
    )


def lines(call: Call) -> Obj:
    invoice = call.sandbox.store.require("invoice", call.path["id"])
    url = f"/v1/invoices/{invoice['id']}/lines"
    return lists.page(invoice["lines"]["data"], call.params, url, "line_item", newest_first=False)


def finalize(call: Call) -> Obj:
    sb = call.sandbox
    invoice = sb.store.require("invoice", call.path["id"])
    invoicing.finalize(sb, invoice)
    if call.params.get("auto_advance") is not None:
        invoice["auto_advance"] = call.params["auto_advance"]
    if int(invoice["amount_due"]) == 0:
        invoicing.mark_paid(sb, invoice)
    else:
        collection.intent_for(sb, invoice)
    return invoice


def pay(call: Call) -> Obj:
    p, sb = call.params, call.sandbox
    invoice = sb.store.require("invoice", call.path["id"])
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] == "void":
        raise invalid("You cannot pay a void invoice.", code="invoice_not_editable")
    customer = sb.store.require("customer", invoice["customer"])
    method = None
    if p.get("payment_method") is not None:
        method = resolve(sb, p["payment_method"], customer["id"], param="payment_method")
    if invoice["status"] == "draft":
        invoicing.finalize(sb, invoice)
    if p.get("paid_out_of_band"):
        invoicing.mark_paid(sb, invoice, attempt_count=int(invoice["attempt_count"]))
        return invoice
    if int(invoice["amount_due"]) == 0:
        invoicing.mark_paid(sb, invoice)
        return invoice
    if method is None and collection.default_method(sb, invoice) is None:
        raise invalid(subscription_changes.NO_PAYMENT_METHOD)
    attempt = collection.attempt(sb, invoice, method=method, automatic=False)
    if attempt is not None and attempt.result is Result.DECLINED:
        raise attempt.decline_error()
    return invoice


def void(call: Call) -> Obj:
    return invoicing.void(call.sandbox, call.sandbox.store.require("invoice", call.path["id"]))


def mark_uncollectible(call: Call) -> Obj:
    return invoicing.mark_uncollectible(call.sandbox, call.sandbox.store.require("invoice", call.path["id"]))


def endpoints() -> list[Endpoint]:
    filters: dict[str, Field] = {
        "customer": Text(),
        "subscription": Text(),
        "status": Choice(("draft", "open", "paid", "uncollectible", "void")),
    }
    pay_fields: dict[str, Field] = {
        "payment_method": Text(),
        "paid_out_of_band": Boolean(),
        "off_session": Boolean(),
        "forgive": Boolean(),
    }
    return [
        Endpoint("GET", "/v1/invoices", listing("invoice", "/v1/invoices", _keep), list_params(filters)),
        Endpoint("GET", "/v1/invoices/{id}", retrieve("invoice")),
        Endpoint("GET", "/v1/invoices/{id}/lines", lines, list_params()),
        Endpoint("POST", "/v1/invoices/{id}/finalize", finalize, Params({"auto_advance": Boolean()})),
        Endpoint("POST", "/v1/invoices/{id}/pay", pay, Params(pay_fields)),
        Endpoint("POST", "/v1/invoices/{id}/void", void),
        Endpoint("POST", "/v1/invoices/{id}/mark_uncollectible", mark_uncollectible),
    ]

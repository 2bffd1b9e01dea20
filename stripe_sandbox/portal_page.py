"""The billing portal page (a customer's subscriptions, each cancellable at period end) and charge receipts."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from stripe_sandbox.billing import period_end
from stripe_sandbox.checkout_page import page
from stripe_sandbox.money import format_amount


def _date(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime("%Y-%m-%d")


def _plan(subscription: Mapping[str, Any], product_names: Mapping[str, str]) -> str:
    parts = []
    for item in subscription["items"]["data"]:
        price = item["price"]
        rec = price["recurring"] or {"interval": "period", "interval_count": 1}
        name = product_names.get(price["product"], price["product"])
        amount = format_amount(int(price["unit_amount"]) * int(item["quantity"]), price["currency"])
        parts.append(f"{name}: {amount} / {rec['interval']}")
    return "; ".join(parts)


def portal(
    session: Mapping[str, Any],
    customer: Mapping[str, Any],
    subscriptions: Sequence[Mapping[str, Any]],
    product_names: Mapping[str, str],
    *,
    notice: str | None = None,
) -> str:
    rows = []
    for sub in subscriptions:
        ends = period_end(sub)
        if sub["status"] == "canceled":
            state, action = f"canceled on {_date(sub['canceled_at'])}", ""
        elif sub["cancel_at_period_end"]:
            state, action = f"{sub['status']}, ends on {_date(ends)}", ""
        else:
            state = f"{sub['status']}, renews on {_date(ends)}"
            action = (
                f'<form method="post" action="{escape(session["id"], quote=True)}/cancel">'
                f'<input type="hidden" name="subscription" value="{escape(sub["id"], quote=True)}">'
                f'<button type="submit">Cancel subscription</button></form>'
            )
        plan = escape(_plan(sub, product_names))
        rows.append(
            f'<li data-subscription="{escape(sub["id"], quote=True)}"><strong>{plan}</strong>'
            f"<br>{escape(state)}{action}</li>"
        )
    listing = '<ul id="subscriptions">\n' + "\n".join(rows) + "\n</ul>" if rows else "<p>No subscriptions.</p>"
    back = f'<p><a href="{escape(session["return_url"], quote=True)}">Return</a></p>' if session["return_url"] else ""
    shown = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    who = escape(customer.get("email") or customer["id"])
    return page("Billing", f"<h1>Billing</h1>\n<p>{who}</p>\n{shown}\n{listing}\n{back}")


def receipt(charge: Mapping[str, Any]) -> str:
    card = charge["payment_method_details"]["card"]
    amount = format_amount(int(charge["amount"]), charge["currency"])
    refunded = (
        f"<p>Refunded: {escape(format_amount(int(charge['amount_refunded']), charge['currency']))}</p>"
        if charge["amount_refunded"]
        else ""
    )
    body = (
        f"<h1>Receipt</h1>\n<p>{escape(amount)}, {escape(charge['status'])}, on {_date(charge['created'])}</p>\n"
        f"<p>{escape(card['brand'])} ending in {escape(card['last4'])}</p>\n{refunded}"
    )
    return page(f"Receipt {amount}", body)

"""Checkout Sessions being paid, expiring, and settling: one logic for the hosted page and the control API.

Mode `payment`: the first attempt creates the session's PaymentIntent; a test card
then succeeds (session `complete`, `paid`), is declined (the session stays open and
can be paid again) or is delayed (session `complete`, `unpaid`, the intent
`processing` until it settles after STRIPE_SANDBOX_ASYNC_DELAY_SECONDS or when
told; then `checkout.session.async_payment_succeeded` or `..._failed`).

Mode `subscription`: the same, and a paid (or delayed) session creates the
customer if needed, the subscription and its first invoice (billing.py). With a
trial nothing is charged: the card is only checked and the session completes
with `payment_status` `no_payment_required` (a card that only fails when charged,
4000 0000 0000 0341, is accepted then). A customer on a test clock gets the clock's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stripe_sandbox import billing, collection, ids, objects, payments
from stripe_sandbox.cards import Behaviour, Card
from stripe_sandbox.errors import invalid
from stripe_sandbox.payments import Result
from stripe_sandbox.sandbox import Sandbox

Obj = dict[str, Any]


@dataclass(frozen=True)
class Payment:
    session: Obj
    result: Result
    # For a decline: what the customer is told ("Your card was declined.").
    message: str | None = None
    attempt: payments.Attempt | None = None


def require_open(session: Obj) -> None:
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is no longer open: its status is {session['status']}.",
            code="checkout_session_not_open" if session["status"] == "complete" else "checkout_session_expired",
        )


def pay(sb: Sandbox, session: Obj, card: Card, *, email: str | None, name: str | None = None) -> Payment:
    require_open(session)
    email = email or session["customer_email"] or _customer_email(sb, session)
    _fill_customer_email(sb, session, email)
    if session["mode"] == "subscription":
        return _pay_subscription(sb, session, card, email, name)
    intent = _intent_for(sb, session, customer_id=session["customer"], description=None)
    attempt = payments.charge_card(sb, intent, card, email=email, name=name)
    if attempt.result is Result.DECLINED:
        return Payment(session, Result.DECLINED, card.message, attempt)
    _complete(sb, session, email, name, "paid" if attempt.result is Result.SUCCEEDED else "unpaid")
    if attempt.result is Result.PROCESSING:
        schedule_settlement(sb, intent["id"])
    return Payment(session, attempt.result, None, attempt)


def _pay_subscription(sb: Sandbox, session: Obj, card: Card, email: str | None, name: str | None) -> Payment:
    details = sb.store.session_subscription_data.get(session["id"], {})
    trial_days = details.get("trial_period_days")
    lines = sb.store.session_lines[session["id"]]
    if trial_days:
        if card.behaviour is Behaviour.DECLINE:
            return Payment(session, Result.DECLINED, card.message)
        customer = _customer_for(sb, session, email, name)
        method = payments.create_payment_method(sb, card, customer_id=customer["id"], email=email, name=name)
        subscription, invoice = billing.start_subscription(
            sb,
            customer=customer,
            lines=lines,
            metadata=details.get("metadata") or {},
            description=details.get("description"),
            trial_end=sb.now_for(customer["id"]) + int(trial_days) * billing.DAY,
            payment_method_id=method["id"],
            paid=False,
        )
        _complete(sb, session, email, name, "no_payment_required", subscription["id"], invoice["id"])
        return Payment(session, Result.SUCCEEDED)
    customer = _customer_for(sb, session, email, name)
    intent = _intent_for(sb, session, customer_id=customer["id"], description="Subscription creation")
    attempt = payments.charge_card(sb, intent, card, email=email, name=name)
    if attempt.result is Result.DECLINED:
        return Payment(session, Result.DECLINED, card.message, attempt)
    subscription, invoice = billing.start_subscription(
        sb,
        customer=customer,
        lines=lines,
        metadata=details.get("metadata") or {},
        description=details.get("description"),
        trial_end=None,
        payment_method_id=attempt.payment_method["id"],
        paid=attempt.result is Result.SUCCEEDED,
        intent=intent,
    )
    status = "paid" if attempt.result is Result.SUCCEEDED else "unpaid"
    _complete(sb, session, email, name, status, subscription["id"], invoice["id"])
    if attempt.result is Result.PROCESSING:
        schedule_settlement(sb, intent["id"])
    return Payment(session, attempt.result, None, attempt)


def _customer_email(sb: Sandbox, session: Obj) -> str | None:
    customer = sb.store.get("customer", session["customer"]) if session["customer"] else None
    return None if customer is None else customer["email"]


def _fill_customer_email(sb: Sandbox, session: Obj, email: str | None) -> None:
    """As Stripe: a session's existing customer without an email gets the one typed on the page."""
    customer = sb.store.get("customer", session["customer"]) if session["customer"] else None
    if customer is not None and not customer["email"] and email:
        sb.update("customer.updated", customer, {"email": email})


def _customer_for(sb: Sandbox, session: Obj, email: str | None, name: str | None) -> Obj:
    """The session's customer; made at the first attempt when the session has none (and then kept up to date
    with what is typed on later attempts, as it is the session's own)."""
    if session["customer"]:
        customer = sb.store.require("customer", session["customer"])
        if sb.store.session_made_customer.get(session["id"]) == customer["id"]:
            sb.update("customer.updated", customer, {"email": email, "name": name or customer["name"]})
        return customer
    customer = objects.customer(
        customer_id=ids.new_id("customer"),
        created=sb.now(),
        email=email,
        name=name,
        description=None,
        phone=None,
        metadata={},
        address=None,
    )
    sb.store.add(customer)
    sb.emit("customer.created", customer)
    session["customer"] = customer["id"]
    sb.store.session_made_customer[session["id"]] = customer["id"]
    return customer


def _intent_for(sb: Sandbox, session: Obj, *, customer_id: str | None, description: str | None) -> Obj:
    """The session's payment intent: created at the first attempt, reused after a decline."""
    existing = sb.store.session_intents.get(session["id"])
    if existing is not None:
        intent = sb.store.require("payment_intent", existing)
        if intent["status"] in payments.CONFIRMABLE:
            return intent
    data = sb.store.session_intent_data.get(session["id"], {})
    intent = payments.create_intent(
        sb,
        amount=int(session["amount_total"]),
        currency=session["currency"],
        customer_id=customer_id,
        description=data.get("description") or description,
        metadata=data.get("metadata") or {},
        receipt_email=data.get("receipt_email"),
        statement_descriptor=data.get("statement_descriptor"),
    )
    sb.store.links(intent["id"]).checkout_session = session["id"]
    sb.store.session_intents[session["id"]] = intent["id"]
    if session["mode"] == "payment":
        session["payment_intent"] = intent["id"]
    return intent


def _complete(
    sb: Sandbox,
    session: Obj,
    email: str | None,
    name: str | None,
    payment_status: str,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
) -> None:
    collected = objects.template("checkout.session")["collected_information"]
    collected.update({"business_name": None, "individual_name": None, "shipping_details": None})
    sb.update(
        None,
        session,
        {
            "status": "complete",
            "payment_status": payment_status,
            "customer_details": objects.customer_details(email, name),
            "collected_information": collected,
            "subscription": subscription_id,
            "invoice": invoice_id,
        },
    )
    sb.emit("checkout.session.completed", session)


def schedule_settlement(sb: Sandbox, intent_id: str) -> None:
    def settle_now() -> None:
        settle(sb, intent_id)

    sb.schedule(sb.async_delay_seconds, settle_now)


def settle(sb: Sandbox, intent_id: str, *, succeed: bool | None = None) -> bool:
    """Settle a delayed payment (as its card says, or as told) and let its session and invoice know."""
    intent = sb.store.get("payment_intent", intent_id)
    if intent is None or not payments.settle(sb, intent, succeed=succeed):
        return False
    succeeded = intent["status"] == "succeeded"
    links = sb.store.links(intent_id)
    collection.settled(sb, intent)
    session = sb.store.get("checkout.session", links.checkout_session) if links.checkout_session else None
    if session is not None and session["status"] == "complete" and session["payment_status"] == "unpaid":
        if succeeded:
            sb.update(None, session, {"payment_status": "paid"})
            sb.emit("checkout.session.async_payment_succeeded", session)
        else:
            sb.emit("checkout.session.async_payment_failed", session)
    return True


def expire(sb: Sandbox, session: Obj) -> Obj:
    if session["status"] != "open":
        raise invalid(
            'Only Checkout Sessions with a status in ["open"] can be expired. '
            f"This Checkout Session has a status of {session['status']}.",
        )
    intent_id = sb.store.session_intents.get(session["id"])
    intent = sb.store.get("payment_intent", intent_id) if intent_id else None
    if intent is not None and intent["status"] in payments.CONFIRMABLE:
        payments.cancel(sb, intent, "abandoned")
    sb.update(None, session, {"status": "expired"})
    sb.emit("checkout.session.expired", session)
    return session


def expire_due(sb: Sandbox) -> int:
    """Expire open sessions whose `expires_at` has passed; how many."""
    now = sb.now()
    due = sb.store.select("checkout.session", lambda s: s["status"] == "open" and s["expires_at"] <= now)
    for session in due:
        expire(sb, session)
    return len(due)

"""The pages a customer's browser sees: hosted checkout, billing portal, charge receipts.

GET  /checkout/{session}          the payment form
POST /checkout/{session}          pay: 303 to success_url, or the form again with the error
GET  /billing_portal/{session}    the customer's subscriptions
POST /billing_portal/{session}/cancel   cancel one at period end
GET  /receipts/{charge}
"""

from __future__ import annotations

import datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from stripe_sandbox import billing, checkout, checkout_page, portal_page
from stripe_sandbox.cards import CardInvalid, card_for_number, check_cvc, check_expiry, parse_expiry
from stripe_sandbox.errors import StripeApiError
from stripe_sandbox.payments import Result
from stripe_sandbox.routes.common import EMAIL
from stripe_sandbox.sandbox import Sandbox

MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


async def read_form(request: Request) -> dict[str, str]:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            break
    return dict(parse_qsl(bytes(body[:MAX_FORM_BYTES]).decode("utf-8", "replace"), keep_blank_values=True))


def html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=NO_STORE)


def routes(sb: Sandbox) -> list[Route]:
    def session_page(
        session_id: str, *, email: str | None = None, error: str | None = None, status: int = 200
    ) -> Response:
        with sb.lock:
            session = sb.store.get("checkout.session", session_id)
            if session is None:
                return html(checkout_page.not_found("No such checkout session."), 404)
            if session["status"] != "open":
                return html(checkout_page.closed(session))
            lines = sb.store.session_lines.get(session_id, [])
            trial = sb.store.session_subscription_data.get(session_id, {}).get("trial_period_days")
            customer = sb.store.get("customer", session["customer"]) if session["customer"] else None
            prefill = email or session["customer_email"] or (customer or {}).get("email")
            return html(checkout_page.checkout(session, lines, email=prefill, error=error, trial_days=trial), status)

    async def show_checkout(request: Request) -> Response:
        return session_page(request.path_params["id"])

    async def pay(request: Request) -> Response:
        session_id = request.path_params["id"]
        form = await read_form(request)
        email = form.get("email", "").strip()
        if not EMAIL.match(email):
            return session_page(session_id, email=email, error="Your email address is invalid.", status=400)
        today = datetime.datetime.now(tz=datetime.UTC)
        try:
            month, year = parse_expiry(form.get("card_expiry", ""))
            check_expiry(month, year, today_year=today.year, today_month=today.month)
            check_cvc(form.get("card_cvc", "").strip())
            card = card_for_number(form.get("card_number", ""))
        except CardInvalid as problem:
            return session_page(session_id, email=email, error=problem.message, status=400)
        name = form.get("cardholder_name", "").strip() or None
        with sb.lock:
            session = sb.store.get("checkout.session", session_id)
            if session is None:
                return html(checkout_page.not_found("No such checkout session."), 404)
            try:
                payment = checkout.pay(sb, session, card, email=email, name=name)
            except StripeApiError:
                return html(checkout_page.closed(session), 409)
            if payment.result is Result.DECLINED:
                declined = payment.message or "Your card was declined."
            else:
                success_url = session["success_url"]
                if success_url:
                    target = success_url.replace("{CHECKOUT_SESSION_ID}", session["id"])
                    return RedirectResponse(target, status_code=303, headers=NO_STORE)
                return html(checkout_page.closed(session))
        return session_page(session_id, email=email, error=declined, status=402)

    def portal_response(session_id: str, notice: str | None = None) -> Response:
        with sb.lock:
            session = sb.store.get("billing_portal.session", session_id)
            customer = sb.store.get("customer", session["customer"]) if session else None
            if session is None or customer is None:
                return html(checkout_page.not_found("No such billing portal session."), 404)
            subscriptions = sb.store.select("subscription", lambda s: s["customer"] == customer["id"])
            names = {product["id"]: product["name"] for product in sb.store.all("product")}
            return html(portal_page.portal(session, customer, subscriptions, names, notice=notice))

    async def show_portal(request: Request) -> Response:
        return portal_response(request.path_params["id"])

    async def cancel_subscription(request: Request) -> Response:
        session_id = request.path_params["id"]
        form = await read_form(request)
        with sb.lock:
            session = sb.store.get("billing_portal.session", session_id)
            subscription = sb.store.get("subscription", form.get("subscription", ""))
            if session is None or subscription is None or subscription["customer"] != session["customer"]:
                return html(checkout_page.not_found("No such subscription."), 404)
            if subscription["status"] != "canceled" and not subscription["cancel_at_period_end"]:
                changes = billing.cancel_at_period_end(sb, subscription, True)
                sb.update("customer.subscription.updated", subscription, changes)
        return portal_response(session_id, notice="Your subscription will end at the end of the current period.")

    async def receipt(request: Request) -> Response:
        with sb.lock:
            charge = sb.store.get("charge", request.path_params["id"])
            if charge is None:
                return html(checkout_page.not_found("No such receipt."), 404)
            return html(portal_page.receipt(charge))

    return [
        Route("/checkout/{id}", show_checkout, methods=["GET"]),
        Route("/checkout/{id}", pay, methods=["POST"]),
        Route("/billing_portal/{id}", show_portal, methods=["GET"]),
        Route("/billing_portal/{id}/cancel", cancel_subscription, methods=["POST"]),
        Route("/receipts/{id}", receipt, methods=["GET"]),
    ]

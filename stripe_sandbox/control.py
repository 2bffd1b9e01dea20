"""The control API for tests, under /_sandbox/, with the same API key and form-encoded parameters
(so `StripeClient.raw_request` can call it). None of it exists at Stripe.

Webhooks
    GET  /_sandbox/webhooks                      delivery status: paused, held, queued, in flight, idle
    POST /_sandbox/webhooks/pause                hold new deliveries (in creation order)
    POST /_sandbox/webhooks/resume               deliver what is held, in order, and stop holding
    POST /_sandbox/webhooks/flush                send what is held: order=created|reverse|shuffle, seed,
                                                 copies=N, concurrent=true|false, wait=true|false
    POST /_sandbox/events/{id}/redeliver         copies=N, concurrent, endpoint=we_..., wait
    GET  /_sandbox/webhooks/attempts             every attempt (filters event, endpoint, type)
Payments
    POST /_sandbox/checkout/sessions/{id}/pay    card=<number>, email, name: the hosted page's logic
    POST /_sandbox/checkout/sessions/{id}/settle outcome=succeeded|failed (default: as the card says)
    POST /_sandbox/payment_intents/{id}/settle   the same, by payment intent
Faults
    GET  /_sandbox/faults                        holds, failures, requests waiting
    POST /_sandbox/faults/holds                  method, path_prefix: matching API requests wait
    POST /_sandbox/faults/release                hold=<id> or every hold
    POST /_sandbox/faults/failures               method, path_prefix, status, count: answered with an error
    DELETE /_sandbox/faults                      release and remove every fault
State
    GET  /_sandbox/state                         how many objects of each type, delivery status
    POST /_sandbox/reset                         forget everything (the settings endpoint is registered again)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stripe_sandbox import checkout, objects
from stripe_sandbox.api import AsyncHandler, Call, Endpoint, Handler
from stripe_sandbox.cards import CardInvalid, card_for_number
from stripe_sandbox.errors import invalid, missing, resource_missing
from stripe_sandbox.faults import Faults
from stripe_sandbox.idempotency import IdempotencyStore
from stripe_sandbox.params import Boolean, Choice, Field, Integer, Params, Text
from stripe_sandbox.sandbox import Sandbox
from stripe_sandbox.webhooks import Delivery, Dispatcher, Order

Obj = dict[str, Any]
PREFIX = "/_sandbox"
KINDS = (
    "customer",
    "product",
    "price",
    "checkout.session",
    "payment_intent",
    "payment_method",
    "charge",
    "refund",
    "subscription",
    "invoice",
    "invoiceitem",
    "test_helpers.test_clock",
    "billing_portal.session",
    "webhook_endpoint",
    "event",
)
DELIVERY_PARAMS: dict[str, Field] = {
    "copies": Integer(minimum=1, maximum=100),
    "concurrent": Boolean(),
    "wait": Boolean(),
}


def _plan(sb: Sandbox, plan: list[Delivery]) -> list[Obj]:
    shown = []
    for delivery in plan:
        event = sb.store.get("event", delivery.event_id)
        shown.append({"event": delivery.event_id, "type": event and event["type"], "endpoint": delivery.endpoint_id})
    return shown


class Control:
    def __init__(
        self,
        sb: Sandbox,
        dispatcher: Dispatcher,
        idempotency: IdempotencyStore,
        faults: Faults,
        on_reset: Callable[[], None],
    ) -> None:
        self.sb = sb
        self.dispatcher = dispatcher
        self.idempotency = idempotency
        self.faults = faults
        self.on_reset = on_reset

    # Webhooks ---------------------------------------------------------------------------------

    def status(self, call: Call) -> Obj:
        return self.dispatcher.status()

    def pause(self, call: Call) -> Obj:
        self.dispatcher.pause()
        return self.dispatcher.status()

    def resume(self, call: Call) -> Obj:
        released = self.dispatcher.resume()
        return {**self.dispatcher.status(), "released": released}

    async def flush(self, call: Call) -> Obj:
        p = call.params
        order = Order(p.get("order") or "created")
        if order is Order.SHUFFLE and p.get("seed") is None:
            raise missing("seed")
        with self.sb.lock:
            plan, task = self.dispatcher.flush(
                order=order, seed=p.get("seed"), copies=p.get("copies") or 1, concurrent=bool(p.get("concurrent"))
            )
            shown = _plan(self.sb, plan)
        answer: Obj = {"object": "sandbox.flush", "order": order.value, "deliveries": shown}
        if p.get("wait"):
            answer["delivered"] = await task
        return answer

    async def redeliver(self, call: Call) -> Obj:
        p = call.params
        with self.sb.lock:
            event = self.sb.store.require("event", call.path["id"])
            endpoint_id = p.get("endpoint")
            if endpoint_id is not None:
                self.sb.store.require("webhook_endpoint", endpoint_id, param="endpoint")
            plan, task = self.dispatcher.redeliver(
                event["id"], copies=p.get("copies") or 1, concurrent=bool(p.get("concurrent")), endpoint_id=endpoint_id
            )
            shown = _plan(self.sb, plan)
        answer: Obj = {"object": "sandbox.redelivery", "deliveries": shown}
        if p.get("wait"):
            answer["delivered"] = await task
        return answer

    def attempts(self, call: Call) -> Obj:
        p = call.params
        rows = [
            attempt.as_json()
            for attempt in self.dispatcher.attempts
            if (p.get("event") is None or attempt.event_id == p["event"])
            and (p.get("endpoint") is None or attempt.endpoint_id == p["endpoint"])
            and (p.get("type") is None or attempt.event_type == p["type"])
        ]
        return objects.list_object(rows, f"{PREFIX}/webhooks/attempts")

    # Payments ---------------------------------------------------------------------------------

    def pay(self, call: Call) -> Obj:
        p = call.params
        session = self.sb.store.require("checkout.session", call.path["id"])
        if p.get("card") is None:
            raise missing("card")
        try:
            card = card_for_number(p["card"])
        except CardInvalid as problem:
            raise invalid(problem.message, param="card", code=problem.code) from problem
        payment = checkout.pay(self.sb, session, card, email=p.get("email"), name=p.get("name"))
        attempt = payment.attempt
        return {
            "object": "sandbox.payment",
            "result": payment.result.value,
            "message": payment.message,
            "checkout_session": session,
            "payment_intent": None if attempt is None else attempt.intent,
            "charge": None if attempt is None else attempt.charge,
        }

    def _settle(self, intent_id: str, outcome: str | None) -> Obj:
        intent = self.sb.store.require("payment_intent", intent_id)
        succeed = None if outcome is None else outcome == "succeeded"
        settled = checkout.settle(self.sb, intent_id, succeed=succeed)
        if not settled:
            raise invalid(
                f"The PaymentIntent {intent_id} has no delayed payment to settle (status {intent['status']}).",
                code="payment_intent_unexpected_state",
            )
        return {"object": "sandbox.settlement", "payment_intent": intent}

    def settle_intent(self, call: Call) -> Obj:
        return self._settle(call.path["id"], call.params.get("outcome"))

    def settle_session(self, call: Call) -> Obj:
        session = self.sb.store.require("checkout.session", call.path["id"])
        intent_id = self.sb.store.session_intents.get(session["id"])
        if intent_id is None:
            raise invalid(f"The Checkout Session {session['id']} has no payment yet.")
        answer = self._settle(intent_id, call.params.get("outcome"))
        return {**answer, "checkout_session": session}

    # Faults -----------------------------------------------------------------------------------

    def faults_status(self, call: Call) -> Obj:
        return self.faults.describe()

    def hold(self, call: Call) -> Obj:
        rule = self.faults.hold(call.params.get("method"), call.params.get("path_prefix"))
        return {"object": "sandbox.hold", "id": rule.id, "method": rule.method, "path_prefix": rule.path_prefix}

    def release(self, call: Call) -> Obj:
        released = self.faults.release(call.params.get("hold"))
        if released is None:
            raise resource_missing("hold", str(call.params.get("hold")), param="hold")
        return {"object": "sandbox.release", "released_requests": released}

    def fail(self, call: Call) -> Obj:
        p = call.params
        rule = self.faults.fail(p.get("method"), p.get("path_prefix"), p.get("status") or 500, p.get("count") or 1)
        return {"object": "sandbox.failure", "id": rule.id, "status": rule.status, "remaining": rule.remaining}

    def clear_faults(self, call: Call) -> Obj:
        self.faults.clear()
        return self.faults.describe()

    # State ------------------------------------------------------------------------------------

    def state(self, call: Call) -> Obj:
        return {
            "object": "sandbox.state",
            "objects": self.sb.store.count(KINDS),
            "webhooks": self.dispatcher.status(),
            "idempotency_keys": len(self.idempotency),
        }

    async def reset(self, call: Call) -> Obj:
        await self.dispatcher.reset()
        self.faults.clear()
        self.idempotency.clear()
        with self.sb.lock:
            self.sb.reset()
            self.on_reset()
            endpoints = [endpoint["id"] for endpoint in self.sb.store.all("webhook_endpoint")]
        return {"object": "sandbox.reset", "webhook_endpoints": endpoints}

    def endpoints(self) -> list[Endpoint]:
        def control(verb: str, path: str, handler: Handler | AsyncHandler, **fields: Field) -> Endpoint:
            return Endpoint(verb, PREFIX + path, handler, Params(fields), stripe=False)

        methods = Choice(("GET", "POST", "DELETE"))
        outcome = Choice(("succeeded", "failed"))
        orders = Choice(tuple(order.value for order in Order))
        return [
            control("GET", "/webhooks", self.status),
            control("POST", "/webhooks/pause", self.pause),
            control("POST", "/webhooks/resume", self.resume),
            control("POST", "/webhooks/flush", self.flush, order=orders, seed=Integer(), **DELIVERY_PARAMS),
            control("POST", "/events/{id}/redeliver", self.redeliver, endpoint=Text(), **DELIVERY_PARAMS),
            control("GET", "/webhooks/attempts", self.attempts, event=Text(), endpoint=Text(), type=Text()),
            control("POST", "/checkout/sessions/{id}/pay", self.pay, card=Text(40), email=Text(800), name=Text(200)),
            control("POST", "/checkout/sessions/{id}/settle", self.settle_session, outcome=outcome),
            control("POST", "/payment_intents/{id}/settle", self.settle_intent, outcome=outcome),
            control("GET", "/faults", self.faults_status),
            control("POST", "/faults/holds", self.hold, method=methods, path_prefix=Text(500)),
            control("POST", "/faults/release", self.release, hold=Text()),
            control(
                "POST",
                "/faults/failures",
                self.fail,
                method=methods,
                path_prefix=Text(500),
                status=Integer(minimum=400, maximum=599),
                count=Integer(minimum=1, maximum=1000),
            ),
            control("DELETE", "/faults", self.clear_faults),
            control("GET", "/state", self.state),
            control("POST", "/reset", self.reset),
        ]

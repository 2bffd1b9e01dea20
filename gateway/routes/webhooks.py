"""`POST /api/stripe/webhook`: Stripe's events, verified, handed to the service that owns them.

In this order, and nothing is recorded anywhere before the signature is good:

1. read the raw body, at most `GATEWAY_MAX_WEBHOOK_BYTES` (413 beyond);
2. verify `Stripe-Signature` over those exact bytes with the `stripe` library,
   against each configured secret (several during a rotation), with the
   configured tolerance (300 s): a missing, forged or stale signature is 400;
3. parse the JSON (400 when it is not an event);
4. route by type, to the owner's `HandleStripeEvent` with `idempotency-key` =
   the event id and the actor `service:stripe-webhook`:
   - Payments: checkout sessions of mode `payment` (or without a mode),
     `payment_intent.*` and `charge.*`;
   - Subscriptions: checkout sessions of mode `subscription`,
     `customer.subscription.*` and `invoice.*`;
5. answer 200 only once the owner has durably recorded the event; if it
   cannot (a service down, a deadline passed) the 5xx makes Stripe retry.

Event types no service acts on are acknowledged (200, `handled: false`) and logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import stripe
from starlette.requests import Request
from starlette.responses import Response

from billing.payments.v1 import payments_pb2
from billing.subscriptions.v1 import subscriptions_pb2
from gateway.grpc_clients import Backends, Caller
from gateway.metrics import webhook_event, webhook_outcome
from gateway.openapi import Operation, Reply
from gateway.payment_schemas import WebhookReceived
from gateway.problems import Problem, Reason
from gateway.routes.common import json_response
from gateway.validation import read_body
from svckit import logs

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "Stripe-Signature"
PAYMENTS_PREFIXES = ("payment_intent.", "charge.")
SUBSCRIPTIONS_PREFIXES = ("customer.subscription.", "invoice.")
WEBHOOK_ACTOR = "service:stripe-webhook"
Owner = Literal["payments", "subscriptions"]
CHECKOUT_OWNERS: Mapping[object, Owner] = {None: "payments", "payment": "payments", "subscription": "subscriptions"}


def owner(event: Mapping[str, Any]) -> Owner | None:
    """Which service acts on the event, or None."""
    event_type = str(event.get("type", ""))
    if event_type.startswith("checkout.session."):
        obj = event.get("data", {}).get("object", {}) if isinstance(event.get("data"), Mapping) else {}
        mode = obj.get("mode") if isinstance(obj, Mapping) else None
        return CHECKOUT_OWNERS.get(mode) if isinstance(mode, str | None) else None
    if event_type.startswith(PAYMENTS_PREFIXES):
        return "payments"
    if event_type.startswith(SUBSCRIPTIONS_PREFIXES):
        return "subscriptions"
    return None


def signature_time(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header, when there is exactly one well-formed one."""
    times = [item[2:] for item in header.split(",") if item.strip().startswith("t=")]
    if len(times) != 1 or not times[0].strip().isdigit():
        return None
    return int(times[0].strip())


def verify(payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int) -> None:
    """A 400 problem unless one of the secrets signed these bytes within the tolerance."""
    if not header:
        raise Problem(400, Reason.INVALID_SIGNATURE, f"the {SIGNATURE_HEADER} header is missing")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        # Stripe signs (and the stripe library verifies) the body as UTF-8 text: no signature can match.
        detail = "the webhook signature is not valid: the body is not UTF-8"
        raise Problem(400, Reason.INVALID_SIGNATURE, detail) from error
    signed_at = signature_time(header)
    if signed_at is not None and signed_at > time.time() + tolerance:
        # The stripe library bounds only the age of a signature; one dated ahead would stay valid until then.
        raise Problem(
            400, Reason.INVALID_SIGNATURE, "the webhook signature is not valid: its timestamp is in the future"
        )
    failure = "no signature matches"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as error:
            failure = str(error.user_message or error)
            continue
        return
    raise Problem(400, Reason.INVALID_SIGNATURE, f"the webhook signature is not valid: {failure}")


def operations(backends: Backends, secrets: Sequence[str], tolerance: int, max_bytes: int) -> list[Operation]:
    async def receive(request: Request) -> Response:
        payload = await read_body(request, max_bytes)
        try:
            verify(payload, request.headers.get(SIGNATURE_HEADER), secrets, tolerance)
        except Problem:
            webhook_event(request, "other", "invalid_signature")
            raise
        try:
            event = json.loads(payload)
        except ValueError as error:
            webhook_event(request, "other", "invalid")
            raise Problem(400, Reason.INVALID_JSON, "the signed body is not JSON") from error
        if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)):
            webhook_event(request, "other", "invalid")
            raise Problem(400, Reason.INVALID_ARGUMENT, "the signed body is not a Stripe event (id and type)")
        event_id, event_type = event["id"], event["type"]
        service = owner(event)
        if service is None:
            log.info("webhook %s (%s) acknowledged: no service acts on it", event_id, event_type)
            webhook_event(request, event_type, "ignored")
            return json_response(WebhookReceived(received=True, handled=False))
        webhook = Caller(request_id=logs.request_id_var.get(), actor=WEBHOOK_ACTOR, idempotency_key=event_id)
        try:
            if service == "subscriptions":
                handled = await backends.call(
                    backends.subscriptions.HandleStripeEvent,
                    subscriptions_pb2.HandleStripeEventRequest(
                        event_id=event_id, event_type=event_type, payload=payload
                    ),
                    webhook,
                )
                webhook_event(request, event_type, webhook_outcome(handled.message.handled, handled.replayed))
                return json_response(WebhookReceived(received=True, handled=handled.message.handled))
            reply = await backends.call(
                backends.payments.HandleStripeEvent,
                payments_pb2.HandleStripeEventRequest(event_id=event_id, event_type=event_type, payload=payload),
                webhook,
            )
        except Problem:
            webhook_event(request, event_type, "failed")
            raise
        webhook_event(request, event_type, webhook_outcome(reply.message.handled, reply.replayed))
        return json_response(WebhookReceived(received=True, handled=reply.message.handled))

    return [
        Operation(
            method="POST",
            path="/api/stripe/webhook",
            operation_id="receiveStripeWebhook",
            summary="Stripe's webhook endpoint",
            description=(
                "Authenticated by the `Stripe-Signature` header, not by a token. Answers 200 once the event is "
                "recorded by the service that owns it (or when no service acts on its type); any other answer "
                "makes Stripe deliver it again. Delivering an event again is always safe."
            ),
            tags=("stripe",),
            handler=receive,
            authenticated=False,
            replies=(Reply(200, "Recorded (or not for any service).", WebhookReceived),),
            problems=(400, 413, 500, 503, 504),
        )
    ]

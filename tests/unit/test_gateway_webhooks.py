"""Webhook signature checks and routing, without I/O."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from gateway.problems import Problem
from gateway.routes.webhooks import owner, verify

OLD, NEW = "whsec_old_secret_0000000000", "whsec_new_secret_1111111111"
PAYLOAD = b'{"id": "evt_1", "type": "charge.refunded"}'


def header(secret: str, payload: bytes = PAYLOAD, age: int = 0) -> str:
    timestamp = int(time.time()) - age
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_during_a_rotation_either_secret_is_accepted() -> None:
    verify(PAYLOAD, header(OLD), [OLD, NEW], 300)
    verify(PAYLOAD, header(NEW), [OLD, NEW], 300)
    with pytest.raises(Problem) as refused:
        verify(PAYLOAD, header(OLD), [NEW], 300)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "t=1,v1=00",
        header(OLD, age=301),
        header(OLD, payload=PAYLOAD + b" "),
        # Correctly signed, but dated an hour ahead: the stripe library alone would accept it.
        header(OLD, age=-3600),
    ],
)
def test_anything_but_a_fresh_signature_of_these_bytes_is_refused(signature: str | None) -> None:
    with pytest.raises(Problem) as refused:
        verify(PAYLOAD, signature, [OLD], 300)
    assert refused.value.reason == "INVALID_SIGNATURE"


def test_a_signature_a_little_ahead_of_this_clock_is_accepted() -> None:
    """Clocks differ: a timestamp within the tolerance ahead is Stripe's clock, not a forgery."""
    verify(PAYLOAD, header(OLD, age=-60), [OLD], 300)


def test_events_go_to_the_service_that_owns_them() -> None:
    session = {"type": "checkout.session.completed", "data": {"object": {"mode": "payment"}}}
    assert owner(session) == "payments"
    assert owner({**session, "data": {"object": {"mode": "subscription"}}}) == "subscriptions"
    assert owner({**session, "data": {"object": {"mode": "setup"}}}) is None
    assert owner({"type": "charge.refunded"}) == "payments"
    assert owner({"type": "payment_intent.succeeded"}) == "payments"
    assert owner({"type": "customer.created"}) is None

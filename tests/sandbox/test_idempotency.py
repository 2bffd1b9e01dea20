"""`Idempotency-Key` as Stripe honours it: replays, reuse with other parameters, a key still in flight."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import stripe

from tests.sandbox.conftest import unique
from tests.support.stripe_sandbox import SECRET_KEY, SandboxProcess, wait_until


def test_same_key_same_parameters_replays(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    key = unique("key")
    params = {"email": "replay@example.com", "metadata": {"user_id": "u1"}}
    first = client.raw_request("post", "/v1/customers", idempotency_key=key, **params)
    second = client.raw_request("post", "/v1/customers", idempotency_key=key, **params)
    assert second.body == first.body
    assert second.code == first.code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Original-Request"] == first.headers["Request-Id"] != second.headers["Request-Id"]
    customer_id = json.loads(first.body)["id"]
    created = [
        e
        for e in client.v1.events.list(params={"type": "customer.created", "limit": 100}).data
        if e.request.idempotency_key == key
    ]
    assert len(created) == 1
    assert created[0].data.object.id == customer_id

    through_library = client.v1.customers.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert through_library.id == customer_id


def test_same_key_other_parameters_is_refused(client: stripe.StripeClient) -> None:
    key = unique("key")
    client.v1.customers.create(params={"email": "one@example.com"}, options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.customers.create(params={"email": "two@example.com"}, options={"idempotency_key": key})
    assert caught.value.http_status == 400
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create(params={"name": "x"}, options={"idempotency_key": key})


def test_key_in_flight_is_a_conflict(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    key = unique("key")
    hold = sandbox.control("post", "/faults/holds", method="POST", path_prefix="/v1/customers")
    results: dict[str, Any] = {}

    def first_request() -> None:
        results["first"] = client.v1.customers.create(
            params={"email": "inflight@example.com"}, options={"idempotency_key": key}
        )

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        wait_until(lambda: sandbox.control("get", "/faults")["held_requests"], what="the first request to be held")
        # Stripe answers 409 idempotency_error; stripe-python raises APIError for any 409 (and retries it
        # when allowed to), keeping IdempotencyError for a key reused with other parameters (400).
        with pytest.raises(stripe.APIError) as caught:
            client.v1.customers.create(params={"email": "inflight@example.com"}, options={"idempotency_key": key})
        assert caught.value.http_status == 409
        assert caught.value.json_body["error"]["type"] == "idempotency_error"
    finally:
        released = sandbox.control("post", "/faults/release", hold=hold["id"])
        thread.join(timeout=15)
    assert released["released_requests"] == 1
    again = client.v1.customers.create(params={"email": "inflight@example.com"}, options={"idempotency_key": key})
    assert again.id == results["first"].id


def test_a_retrying_client_gets_the_first_answer(sandbox: SandboxProcess) -> None:
    """The library retries a 409 (with the same key): once the first request is done, it gets its answer."""
    key = unique("key")
    retrying = sandbox.client(max_network_retries=5)
    hold = sandbox.control("post", "/faults/holds", method="POST", path_prefix="/v1/products")
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda name=name: results.__setitem__(
                name, retrying.v1.products.create(params={"name": "Once"}, options={"idempotency_key": key})
            )
        )
        for name in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: sandbox.control("get", "/faults")["held_requests"], what="a held request")
    sandbox.control("post", "/faults/release", hold=hold["id"])
    for thread in threads:
        thread.join(timeout=30)
    assert results["a"].id == results["b"].id


def test_declines_are_replayed_too(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
    key = unique("key")
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            client.v1.payment_intents.confirm(
                intent.id, params={"payment_method": "pm_card_chargeDeclined"}, options={"idempotency_key": key}
            )
        errors.append(caught.value)
    assert errors[0].json_body == errors[1].json_body
    assert errors[1].headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.charges.list(params={"payment_intent": intent.id}).data) == 1


def test_validation_failures_are_not_kept(client: stripe.StripeClient) -> None:
    key = unique("key")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"currency": "usd"}, options={"idempotency_key": key})  # type: ignore[typeddict-item]
    intent = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd"}, options={"idempotency_key": key}
    )
    assert intent.status == "requires_payment_method"


def test_get_requests_ignore_the_key(sandbox: SandboxProcess) -> None:
    headers = {"Idempotency-Key": unique("key")}
    with httpx.Client(base_url=sandbox.url, auth=(SECRET_KEY, ""), headers=headers) as http:
        first = http.get("/v1/customers", params={"limit": 1})
        second = http.get("/v1/customers", params={"limit": 2})
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers


def test_injected_failures(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    sandbox.control("post", "/faults/failures", path_prefix="/v1/prices", status=500, count=1)
    with pytest.raises(stripe.APIError) as outage:
        client.v1.prices.list()
    assert outage.value.http_status == 500
    assert client.v1.prices.list(params={"limit": 1}).object == "list"
    sandbox.control("post", "/faults/failures", path_prefix="/v1/prices", status=429, count=1)
    with pytest.raises(stripe.RateLimitError):
        client.v1.prices.list()
    started = time.monotonic()
    retrying = sandbox.client(max_network_retries=2)
    sandbox.control("post", "/faults/failures", path_prefix="/v1/customers", status=503, count=1)
    assert retrying.v1.customers.list(params={"limit": 1}).object == "list"
    assert time.monotonic() - started < 30
    assert sandbox.control("delete", "/faults")["failures"] == []

"""The sandbox's pure parts, without a server: bracket notation, parameter rules, cards, signing, idempotency."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
import stripe
from stripe._encode import _api_encode

from stripe_sandbox import billing, cards, checkout
from stripe_sandbox.api import Call
from stripe_sandbox.errors import StripeApiError
from stripe_sandbox.forms import parse_query
from stripe_sandbox.idempotency import IdempotencyStore, SavedResponse
from stripe_sandbox.money import format_amount
from stripe_sandbox.params import Array, Boolean, Choice, Hash, Integer, Metadata, Params, Text, apply_metadata
from stripe_sandbox.routes import checkout_sessions
from stripe_sandbox.sandbox import Sandbox
from stripe_sandbox.webhooks import RetryPolicy, sign


class TestBracketNotation:
    def test_nested_hashes_lists_and_appends(self) -> None:
        parsed = parse_query(
            "metadata[user_id]=u1&line_items[0][price_data][currency]=usd&line_items[0][quantity]=2"
            "&line_items[1][price]=price_1&expand[]=a&expand[]=b&mode=payment"
        )
        assert parsed == {
            "metadata": {"user_id": "u1"},
            "line_items": [{"price_data": {"currency": "usd"}, "quantity": "2"}, {"price": "price_1"}],
            "expand": ["a", "b"],
            "mode": "payment",
        }

    def test_what_the_stripe_library_sends_round_trips(self) -> None:
        params = {
            "line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 500}}],
            "metadata": {"a": "b", "0": "zero"},
            "lookup_keys": ["x", "y"],
            "flag": True,
            "created": {"gte": 5},
            "empty": "",
        }
        parsed = parse_query(urlencode(list(_api_encode(params))))
        assert parsed == {
            "line_items": [{"quantity": "1", "price_data": {"currency": "usd", "unit_amount": "500"}}],
            "metadata": {"a": "b", "0": "zero"},
            "lookup_keys": ["x", "y"],
            "flag": "true",
            "created": {"gte": "5"},
            "empty": "",
        }

    def test_indexes_order_the_list(self) -> None:
        assert parse_query("a[2]=c&a[0]=a&a[1]=b") == {"a": ["a", "b", "c"]}

    def test_a_value_and_a_hash_under_one_name_is_refused(self) -> None:
        with pytest.raises(StripeApiError) as caught:
            parse_query("a=1&a[b]=2")
        assert caught.value.status == 400


class TestParameters:
    SPEC = Params(
        {
            "amount": Integer(minimum=1),
            "flag": Boolean(),
            "mode": Choice(("payment", "subscription")),
            "nested": Hash({"name": Text(10)}),
            "items": Array(Text()),
            "metadata": Metadata(),
        }
    )

    def test_converts_types(self) -> None:
        assert self.SPEC.validate(
            {"amount": "5", "flag": "true", "mode": "payment", "nested": {"name": "n"}, "items": ["a"]}
        ) == {"amount": 5, "flag": True, "mode": "payment", "nested": {"name": "n"}, "items": ["a"]}

    @pytest.mark.parametrize(
        ("raw", "param", "code"),
        [
            ({"nope": "1"}, "nope", "parameter_unknown"),
            ({"nested": {"nope": "1"}}, "nested[nope]", "parameter_unknown"),
            ({"amount": "abc"}, "amount", "parameter_invalid_integer"),
            ({"amount": "0"}, "amount", "parameter_invalid_integer"),
            ({"flag": "yes"}, "flag", None),
            ({"mode": "setup"}, "mode", None),
            ({"nested": {"name": "x" * 11}}, "nested[name]", "string_length_exceeds_maximum"),
            ({"metadata": {"k" * 41: "v"}}, f"metadata[{'k' * 41}]", None),
        ],
    )
    def test_refuses_like_stripe(self, raw: dict[str, object], param: str, code: str | None) -> None:
        with pytest.raises(StripeApiError) as caught:
            self.SPEC.validate(raw)
        assert (caught.value.param, caught.value.code, caught.value.status) == (param, code, 400)

    def test_empty_string_unsets(self) -> None:
        assert self.SPEC.validate({"amount": "", "metadata": ""}) == {"amount": None, "metadata": None}
        assert apply_metadata({"a": "1", "b": "2"}, {"a": None, "c": "3"}) == {"b": "2", "c": "3"}
        assert apply_metadata({"a": "1"}, None) == {}


class TestCards:
    @pytest.mark.parametrize("number", [card.number for card in cards.TEST_CARDS])
    def test_every_test_card_is_luhn_valid(self, number: str) -> None:
        assert cards.luhn_valid(number)

    def test_behaviours(self) -> None:
        assert cards.card_for_number("4242 4242 4242 4242").behaviour is cards.Behaviour.SUCCEED
        declined = cards.card_for_number("4000-0000-0000-0002")
        assert (declined.behaviour, declined.decline_code, declined.last4) == (
            cards.Behaviour.DECLINE,
            "generic_decline",
            "0002",
        )
        assert cards.card_for_number("4000000000001125").behaviour is cards.Behaviour.DELAYED_SUCCESS
        assert cards.card_for_number("4000000000002222").behaviour is cards.Behaviour.DELAYED_FAILURE
        assert cards.card_for_number("4012888888881881").decline_code == "test_mode_live_card"
        with pytest.raises(cards.CardInvalid):
            cards.card_for_number("4242424242424241")

    def test_a_card_keeps_brand_and_last4_only(self) -> None:
        card = cards.card_for_number("5555555555554444")
        assert (card.brand, card.last4) == ("mastercard", "4444")
        assert "5555555555554444" not in repr(card)


def test_signature_is_what_the_stripe_library_verifies() -> None:
    body = b'{\n  "id": "evt_1",\n  "object": "event",\n  "type": "x.y"\n}'
    header = sign(body, "whsec_test", int(time.time()))
    assert stripe.WebhookSignature.verify_header(body, header, "whsec_test", 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, "whsec_test", 300)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RetryPolicy(base_delay_seconds=0.5, factor=2, max_attempts=8, max_delay_seconds=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


class TestIdempotencyStore:
    def test_replays_refuses_and_expires(self) -> None:
        now = [1000.0]
        store = IdempotencyStore(retention_seconds=60, clock=lambda: now[0])
        assert store.begin("sk", "k", "POST /v1/x", {"a": "1"}) is None
        with pytest.raises(StripeApiError) as in_flight:
            store.begin("sk", "k", "POST /v1/x", {"a": "1"})
        assert (in_flight.value.status, in_flight.value.type) == (409, "idempotency_error")
        store.finish("sk", "k", SavedResponse(200, b"{}", {}))
        assert store.begin("sk", "k", "POST /v1/x", {"a": "1"}) == SavedResponse(200, b"{}", {})
        with pytest.raises(StripeApiError) as reused:
            store.begin("sk", "k", "POST /v1/x", {"a": "2"})
        assert (reused.value.status, reused.value.type) == (400, "idempotency_error")
        with pytest.raises(StripeApiError):
            store.begin("sk", "k", "POST /v1/y", {"a": "1"})
        assert store.begin("other-key", "k", "POST /v1/y", {}) is None
        now[0] += 61
        assert store.begin("sk", "k", "POST /v1/x", {"a": "2"}) is None

    def test_a_forgotten_key_can_run_again(self) -> None:
        store = IdempotencyStore()
        assert store.begin("sk", "k", "POST /v1/x", {}) is None
        store.finish("sk", "k", None)
        assert store.begin("sk", "k", "POST /v1/x", {"other": "params"}) is None


def test_amounts_are_formatted_without_floats() -> None:
    assert format_amount(1099, "usd") == "$10.99"
    assert format_amount(5, "eur") == "€0.05"
    assert format_amount(500, "jpy") == "¥500"
    assert format_amount(123456, "sek") == "1,234.56 SEK"


def test_billing_periods_add_calendar_months() -> None:
    jan31 = 1_738_281_600  # 2025-01-31T00:00:00Z
    assert billing.add_interval(jan31, "month", 1) == 1_740_700_800  # 2025-02-28
    assert billing.add_interval(jan31, "year", 1) == 1_769_817_600  # 2026-01-31
    assert billing.add_interval(jan31, "week", 2) == jan31 + 14 * 86400


def test_sessions_expire_when_their_time_comes() -> None:
    """In process, with a clock the test moves: the sweep expires what is due, with Stripe's event."""
    now = [1_800_000_000.0]
    sb = Sandbox(public_url="http://sandbox.test", api_version="v", async_delay_seconds=1, clock=lambda: now[0])
    raw = {
        "mode": "payment",
        "expires_at": str(int(now[0]) + 1800),
        "line_items": [
            {"quantity": "1", "price_data": {"currency": "usd", "unit_amount": "500", "product_data": {"name": "x"}}}
        ],
    }
    params = Params(checkout_sessions.FIELDS).validate(raw)
    session = checkout_sessions.create(Call(sb, params, {}, "req_test", None))
    assert session["url"] == f"http://sandbox.test/checkout/{session['id']}"
    assert checkout.expire_due(sb) == 0
    now[0] += 1800
    assert checkout.expire_due(sb) == 1
    assert session["status"] == "expired"
    assert [event["type"] for event in sb.store.all("event")] == ["checkout.session.expired"]

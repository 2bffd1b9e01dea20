"""Payments' rules without I/O: forward-only status, credits owed once, refunds owed back, the catalog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments_svc import domain
from payments_svc.domain import PaymentStatus as S
from svckit.errors import InvalidArgument

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def payment(status: S = S.PENDING, credits: int = 100, amount: int = 500) -> domain.Payment:
    return domain.Payment(
        id="pay_" + "0" * 32,
        user_id="alice",
        package_id="credits-100",
        credits=credits,
        amount_minor=amount,
        currency="usd",
        flow=domain.PaymentFlow.CHECKOUT,
        status=status,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_paid_payment_never_goes_back() -> None:
    for reported in (S.PENDING, S.PROCESSING, S.FAILED, S.EXPIRED, S.CANCELED):
        assert domain.next_status(S.SUCCEEDED, reported) is S.SUCCEEDED
    assert domain.next_status(S.REFUNDED, S.PARTIALLY_REFUNDED) is S.REFUNDED


def test_paid_wins_over_not_yet_paid_whatever_the_order() -> None:
    for before in (S.PENDING, S.PROCESSING, S.FAILED, S.EXPIRED, S.CANCELED):
        assert domain.next_status(before, S.SUCCEEDED) is S.SUCCEEDED


def test_credits_are_owed_once_however_many_events_say_paid() -> None:
    p = payment()
    first = domain.apply_report(p, domain.Reported(status=S.SUCCEEDED), "evt_1", NOW)
    again = domain.apply_report(p, domain.Reported(status=S.SUCCEEDED), "evt_2", NOW)
    late = domain.apply_report(p, domain.Reported(status=S.PROCESSING), "evt_0", NOW)
    assert (first.grant_credits, again.grant_credits, late.grant_credits) == (True, False, False)
    assert p.status is S.SUCCEEDED
    assert [c.status for c in p.history] == [S.SUCCEEDED]


def test_a_delayed_payment_owes_credits_only_when_it_succeeds() -> None:
    p = payment()
    assert not domain.apply_report(p, domain.Reported(status=S.PROCESSING), "evt_1", NOW).grant_credits
    assert domain.apply_report(p, domain.Reported(status=S.SUCCEEDED), "evt_2", NOW).grant_credits


def test_refunds_owe_back_the_refunded_share_rounded_down() -> None:
    p = payment(S.SUCCEEDED, credits=100, amount=333)
    half = domain.apply_report(p, domain.Reported(amount_refunded_minor=167), "evt_1", NOW)
    assert half.reverse == (0, 50)  # 100 * 167 // 333
    assert p.status is S.PARTIALLY_REFUNDED
    stale = domain.apply_report(p, domain.Reported(amount_refunded_minor=100), "evt_0", NOW)
    assert stale.reverse is None
    assert p.amount_refunded_minor == 167
    rest = domain.apply_report(p, domain.Reported(amount_refunded_minor=333), "evt_2", NOW)
    assert rest.reverse == (50, 100)
    assert p.status is S.REFUNDED


def test_a_refund_seen_before_the_payment_event_still_owes_the_grant_and_the_reversal() -> None:
    p = payment(S.PENDING)
    effects = domain.apply_report(p, domain.Reported(amount_refunded_minor=500), "evt_1", NOW)
    assert effects.grant_credits
    assert effects.reverse == (0, 100)
    assert p.status is S.REFUNDED


@given(
    refunds=st.lists(st.integers(0, 1000), max_size=8),
    credits=st.integers(1, 10_000),
    amount=st.integers(1, 1000),
)
def test_credits_owed_back_never_exceed_the_grant_and_never_shrink(
    refunds: list[int], credits: int, amount: int
) -> None:
    p = payment(S.SUCCEEDED, credits=credits, amount=amount)
    asked = 0
    for refunded in refunds:
        effects = domain.apply_report(p, domain.Reported(amount_refunded_minor=refunded), "evt", NOW)
        if effects.reverse is not None:
            before, after = effects.reverse
            assert before == asked < after
            asked = after
    assert asked == p.credits_reversed <= credits
    assert p.amount_refunded_minor <= amount


def test_refund_commands_check_the_payment() -> None:
    with pytest.raises(domain.PaymentNotRefundable):
        domain.RefundPayment("pay_" + "0" * 32, None).amount_for(payment(S.PENDING))
    with pytest.raises(domain.RefundExceedsRemaining):
        domain.RefundPayment("pay_" + "0" * 32, 501).amount_for(payment(S.SUCCEEDED))
    assert domain.RefundPayment("pay_" + "0" * 32, None).amount_for(payment(S.SUCCEEDED)) == 500
    with pytest.raises(InvalidArgument) as raised:
        domain.RefundPayment("nope", 0, "because").validate()
    assert [v.field for v in raised.value.violations] == ["payment_id", "amount_minor", "reason"]


def test_buying_needs_absolute_http_urls_for_checkout() -> None:
    with pytest.raises(InvalidArgument) as raised:
        domain.BuyPackage("alice", "credits-100", "USD", "javascript:alert(1)", "/relative").validate(checkout=True)
    assert [v.field for v in raised.value.violations] == ["currency", "success_url", "cancel_url"]
    domain.BuyPackage("alice", "credits-100", "", "").validate(checkout=False)


def test_the_payment_id_is_the_same_for_every_retry_of_a_call() -> None:
    first = domain.payment_id_for("gateway", "key-1")
    assert first == domain.payment_id_for("gateway", "key-1")
    assert first != domain.payment_id_for("gateway", "key-2")
    assert first != domain.payment_id_for("other", "key-1")
    assert domain.PAYMENT_ID_PATTERN.match(first)


def test_catalog_problems_are_all_reported() -> None:
    packages = [
        domain.CreditPackage("Bad Id", "", 0, {"USD": 0}),
        domain.CreditPackage("ok", "OK", 10, {"eur": 100}),
        domain.CreditPackage("ok", "OK", 10, {"usd": 100}),
    ]
    problems = "\n".join(domain.validate_catalog(packages, "usd"))
    expected = ("lower-case letters", "name is empty", "credits must be", "ISO 4217", "between 1", "twice", "default")
    for sentence in expected:
        assert sentence in problems


def test_the_catalog_prices_a_package_or_names_the_bad_field() -> None:
    catalog = domain.Catalog([domain.CreditPackage("credits-100", "100", 100, {"usd": 500, "eur": 450})], "usd")
    assert catalog.price("credits-100", "")[1:] == ("usd", 500)
    assert catalog.price("credits-100", "eur")[1:] == ("eur", 450)
    for package_id, currency, field in (("nope", "usd", "package_id"), ("credits-100", "gbp", "currency")):
        with pytest.raises(InvalidArgument) as raised:
            catalog.price(package_id, currency)
        assert [v.field for v in raised.value.violations] == [field]

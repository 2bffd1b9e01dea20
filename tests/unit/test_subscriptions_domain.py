"""Subscription rules without I/O: readings never roll back, what each state allows, credits per invoice,
the plan catalog, and reading Stripe's objects and events."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscriptions_svc import domain
from subscriptions_svc.domain import PaidInvoice, PriceInfo, Snapshot, Status, Subscription
from subscriptions_svc.plans import DEFAULT_PLANS, InvalidPlans, load_plans
from subscriptions_svc.stripe_events import facts_from_event
from subscriptions_svc.stripe_objects import paid_invoice, subscription_snapshot
from svckit.errors import InvalidArgument
from svckit.inbox import MalformedEvent

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PRICE = PriceInfo("price_1", "starter", "standard", "usd", "month", 900, 1000, 0, True)
TRIAL_PRICE = PriceInfo("price_2", "pro", "standard", "usd", "month", 2900, 5000, 500, True)


def record(status: Status = Status.ACTIVE, **changes: object) -> Subscription:
    sub = Subscription(
        id="sub_ours",
        user_id="u1",
        plan_id="starter",
        family="standard",
        quantity=1,
        status=status,
        currency="usd",
        interval="month",
        stripe_price_id="price_1",
        stripe_customer_id="cus_1",
        created_at=T0,
        updated_at=T0,
        stripe_subscription_id="sub_stripe",
    )
    return dataclasses.replace(sub, **changes)  # type: ignore[arg-type]


def snapshot(status: Status = Status.ACTIVE, **changes: object) -> Snapshot:
    snap = Snapshot(
        stripe_subscription_id="sub_stripe",
        stripe_customer_id="cus_1",
        status=status,
        stripe_price_id="price_1",
        stripe_item_id="si_1",
        quantity=1,
        current_period_start=T0,
        current_period_end=T0 + timedelta(days=30),
        trial_end=None,
        cancel_at_period_end=False,
        cancel_at=None,
        canceled_at=None,
        ended_at=None,
        pause_behavior=None,
        pause_resumes_at=None,
        subscription_id="sub_ours",
        user_id="u1",
    )
    return dataclasses.replace(snap, **changes)  # type: ignore[arg-type]


# --- readings --------------------------------------------------------------------------------


def test_a_newer_reading_is_folded_in() -> None:
    sub = record()
    assert domain.apply_snapshot(sub, snapshot(Status.PAST_DUE), PRICE, T0 + timedelta(seconds=5), T0)
    assert sub.status is Status.PAST_DUE
    assert sub.synced_at == T0 + timedelta(seconds=5)


def test_an_older_reading_never_rolls_the_record_back() -> None:
    sub = record()
    domain.apply_snapshot(sub, snapshot(Status.PAST_DUE), PRICE, T0 + timedelta(seconds=5), T0)
    assert not domain.apply_snapshot(sub, snapshot(Status.ACTIVE), PRICE, T0 + timedelta(seconds=4), T0)
    assert sub.status is Status.PAST_DUE


def test_an_ended_subscription_never_comes_back() -> None:
    sub = record()
    domain.apply_snapshot(sub, snapshot(Status.CANCELED, ended_at=T0), PRICE, T0, T0)
    assert not domain.apply_snapshot(sub, snapshot(Status.ACTIVE), PRICE, T0 + timedelta(hours=1), T0)
    assert sub.status is Status.CANCELED
    assert sub.family_slot is None


def test_a_reading_on_another_price_moves_the_plan() -> None:
    sub = record()
    domain.apply_snapshot(sub, snapshot(stripe_price_id="price_2"), TRIAL_PRICE, T0, T0)
    assert (sub.plan_id, sub.stripe_price_id) == ("pro", "price_2")


def test_unexpected_moves_are_named() -> None:
    assert domain.is_unexpected(Status.CANCELED, Status.ACTIVE)
    assert not domain.is_unexpected(Status.ACTIVE, Status.PAST_DUE)
    assert not domain.is_unexpected(Status.PAST_DUE, Status.ACTIVE)


# --- what each state allows ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.CANCELED, Status.INCOMPLETE_EXPIRED, Status.UNPAID, Status.PAUSED])
def test_a_plan_change_is_refused_outside_live_billing_naming_the_state(status: Status) -> None:
    with pytest.raises(domain.StateNotAllowed) as refused:
        domain.check_change(record(status))
    assert status.value in str(refused.value)
    assert refused.value.metadata["status"] == status.value


def test_cancel_rules() -> None:
    with pytest.raises(domain.StateNotAllowed, match="canceled"):
        domain.check_cancel(record(Status.CANCELED), at_period_end=False)
    with pytest.raises(domain.StateNotAllowed, match="already"):
        domain.check_cancel(record(cancel_at_period_end=True), at_period_end=True)
    with pytest.raises(domain.StateNotAllowed, match="checkout"):
        domain.check_cancel(record(Status.INCOMPLETE, stripe_subscription_id=None), at_period_end=False)
    domain.check_cancel(record(Status.PAST_DUE), at_period_end=False)
    domain.check_cancel(record(), at_period_end=True)


def test_reactivate_pause_and_resume_rules() -> None:
    with pytest.raises(domain.StateNotAllowed, match="pending cancellation"):
        domain.check_reactivate(record())
    domain.check_reactivate(record(cancel_at_period_end=True))
    with pytest.raises(domain.StateNotAllowed, match="already"):
        domain.check_pause(record(pause_behavior=domain.PauseBehavior.VOID))
    with pytest.raises(domain.StateNotAllowed):
        domain.check_pause(record(Status.PAST_DUE))
    with pytest.raises(domain.StateNotAllowed, match="not paused"):
        domain.check_resume(record())
    domain.check_resume(record(pause_behavior=domain.PauseBehavior.KEEP_AS_DRAFT))
    domain.check_resume(record(Status.PAUSED))


def test_only_a_checkout_whose_session_is_unknown_is_let_go_on_time_alone() -> None:
    pending = record(Status.INCOMPLETE, stripe_subscription_id=None, pending_until=T0)
    assert pending.family_slot == "standard"
    later = T0 + domain.ABANDONED_AFTER
    assert not pending.abandoned(later - timedelta(seconds=1))
    assert pending.abandoned(later)
    # With a known session, Stripe is asked instead: it may have been paid just before it closed.
    assert not dataclasses.replace(pending, checkout_session_id="cs_1").abandoned(later + timedelta(days=1))
    pending.expire_checkout(T0)
    assert pending.status is Status.INCOMPLETE_EXPIRED
    assert pending.family_slot is None


# --- credits per invoice -------------------------------------------------------------------------


def invoice(reason: str = "subscription_cycle", paid: int = 900, quantity: int = 1, days: int = 30) -> PaidInvoice:
    return PaidInvoice("in_1", "sub_stripe", reason, paid, "price_1", quantity, T0, T0 + timedelta(days=days))


def test_each_period_invoice_grants_the_plan_credits_times_the_quantity() -> None:
    assert domain.credits_for(invoice(), PRICE, None) == domain.GrantDue(1000, "period")
    assert domain.credits_for(invoice("subscription_create", quantity=3), PRICE, None) == domain.GrantDue(
        3000, "period"
    )


def test_a_proration_invoice_grants_nothing() -> None:
    assert domain.credits_for(invoice("subscription_update"), PRICE, None) is None
    assert domain.credits_for(invoice("manual"), PRICE, None) is None


def test_a_trial_grants_the_trial_credits_only() -> None:
    trial_end = T0 + timedelta(days=14)
    trial_invoice = invoice("subscription_create", paid=0, days=14)
    assert domain.credits_for(trial_invoice, TRIAL_PRICE, trial_end) == domain.GrantDue(500, "trial")
    assert domain.credits_for(trial_invoice, PRICE, trial_end) is None  # a plan without trial credits
    # A free period after the trial (a 100% promotion code) is still a period.
    assert domain.credits_for(invoice(paid=0), TRIAL_PRICE, trial_end) == domain.GrantDue(5000, "period")


# --- commands ------------------------------------------------------------------------------------


def test_a_subscribe_command_names_every_bad_field() -> None:
    bad = domain.Subscribe("", "Bad Plan!", "USD", "week", 0, "ftp://x", "")
    with pytest.raises(InvalidArgument) as refused:
        bad.validate(checkout=True)
    fields = {v.field for v in refused.value.violations}
    assert fields == {"user_id", "plan_id", "currency", "interval", "quantity", "success_url", "cancel_url"}


def test_a_change_needs_a_plan_or_a_quantity_and_a_pause_a_future_resume() -> None:
    with pytest.raises(InvalidArgument):
        domain.ChangePlan("", 0, domain.ProrationBehavior.NONE).validate()
    with pytest.raises(InvalidArgument) as refused:
        domain.Pause(domain.PauseBehavior.VOID, T0).validate(T0)
    assert refused.value.violations[0].field == "resumes_at"


# --- the catalog ---------------------------------------------------------------------------------


def test_the_shipped_catalog_is_valid() -> None:
    catalog = load_plans(DEFAULT_PLANS)
    assert {p.plan_id for p in catalog.plans} >= {"starter", "pro"}


def test_an_invalid_catalog_is_refused_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(
        'default_currency = "usd"\n'
        "[[plans]]\n"
        'id = "a"\nname = "A"\ncredits_per_period = 0\ntrial_credits = 5\n'
        'prices = [{ currency = "usd", interval = "week", amount = 0 }]\n'
    )
    with pytest.raises(InvalidPlans) as refused:
        load_plans(path)
    message = str(refused.value)
    for problem in ("credits_per_period", "trial_credits", "interval", "amount", "monthly price"):
        assert problem in message


# --- Stripe's objects and events -----------------------------------------------------------------


def stripe_subscription(**changes: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "id": "sub_stripe",
        "object": "subscription",
        "customer": "cus_1",
        "status": "active",
        "cancel_at_period_end": False,
        "pause_collection": {"behavior": "void", "resumes_at": None},
        "metadata": {"subscription_id": "sub_ours", "user_id": "u1"},
        "items": {
            "data": [
                {
                    "id": "si_1",
                    "price": {"id": "price_1"},
                    "quantity": 2,
                    "current_period_start": 1_800_000_000,
                    "current_period_end": 1_802_592_000,
                }
            ]
        },
    }
    obj.update(changes)
    return obj


def test_a_subscription_object_is_read_from_its_item() -> None:
    snap = subscription_snapshot(stripe_subscription())
    assert snap.quantity == 2
    assert snap.stripe_price_id == "price_1"
    assert snap.current_period_end == datetime.fromtimestamp(1_802_592_000, tz=UTC)
    assert snap.pause_behavior is domain.PauseBehavior.VOID
    assert snap.subscription_id == "sub_ours"


def test_an_invoice_names_its_subscription_in_the_current_and_older_shapes() -> None:
    line = {"period": {"start": 1, "end": 2}, "quantity": 1, "pricing": {"price_details": {"price": "price_1"}}}
    current = {
        "id": "in_1",
        "billing_reason": "subscription_cycle",
        "amount_paid": 900,
        "parent": {"subscription_details": {"subscription": "sub_stripe"}},
        "lines": {"data": [{"proration": True, "period": {"start": 0, "end": 1}}, line]},
    }
    facts = paid_invoice(current)
    assert facts is not None
    assert facts.stripe_subscription_id == "sub_stripe"
    assert facts.stripe_price_id == "price_1"  # the regular line, not the proration
    older = {**current, "parent": None, "subscription": "sub_stripe"}
    assert paid_invoice(older) is not None
    assert paid_invoice({**current, "parent": None}) is None  # a one-off invoice


def test_events_are_sorted_into_what_they_mean() -> None:
    def event(event_type: str, obj: dict[str, object]) -> dict[str, object]:
        return {"id": "evt_1", "type": event_type, "data": {"object": obj}}

    updated = facts_from_event("customer.subscription.updated", event("x", stripe_subscription()))
    assert updated is not None
    assert updated.stripe_subscription_id == "sub_stripe"
    assert updated.notice is None
    trial = facts_from_event("customer.subscription.trial_will_end", event("x", stripe_subscription(trial_end=5)))
    assert trial is not None
    assert trial.notice is not None
    assert trial.notice.key.endswith(":5")
    payment_mode = {"id": "cs_1", "mode": "payment"}
    assert facts_from_event("checkout.session.completed", event("x", payment_mode)) is None
    assert facts_from_event("invoice.created", event("x", {})) is None
    failed = {
        "id": "in_9",
        "customer": "cus_1",
        "attempt_count": 2,
        "subscription": "sub_stripe",
        "customer_email": "a@example.com",
    }
    facts = facts_from_event("invoice.payment_failed", event("x", failed))
    assert facts is not None
    assert facts.notice is not None
    assert facts.notice.key == "notify:payment-failed:in_9:2"
    assert facts.notice.email == "a@example.com"
    with pytest.raises(MalformedEvent):
        facts_from_event("customer.subscription.updated", {"id": "evt", "data": {"object": {"id": "sub"}}})


# --- readings in any order, property-based -----------------------------------------------------

LIVE = [Status.INCOMPLETE, Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.UNPAID, Status.PAUSED]


@st.composite
def timelines(draw: st.DrawFn) -> list[Snapshot]:
    """What successive readings of one subscription can show: live states, then possibly an end that stays."""
    count = draw(st.integers(min_value=1, max_value=12))
    readings = []
    ended: Status | None = None
    for step in range(count):
        if ended is None and draw(st.booleans()) and step > 0 and draw(st.integers(0, 4)) == 0:
            ended = draw(st.sampled_from(sorted(domain.ENDED)))
        status = ended or draw(st.sampled_from(LIVE))
        readings.append(
            snapshot(
                status,
                quantity=draw(st.integers(1, 5)),
                cancel_at_period_end=draw(st.booleans()),
                current_period_end=T0 + timedelta(days=30 * (step + 1)),
            )
        )
    return readings


@given(timelines(), st.randoms(use_true_random=False), st.integers(min_value=0, max_value=6))
def test_readings_applied_in_any_order_with_duplicates_leave_the_newest(
    readings: list[Snapshot], rng: random.Random, duplicates: int
) -> None:
    timed = [(T0 + timedelta(seconds=i), reading) for i, reading in enumerate(readings)]
    delivered = timed + [rng.choice(timed) for _ in range(duplicates)]
    rng.shuffle(delivered)
    sub = record(Status.INCOMPLETE, stripe_subscription_id=None)
    for read_at, reading in delivered:
        domain.apply_snapshot(sub, reading, PRICE, read_at, T0)
    newest = readings[-1]
    assert sub.status is newest.status
    assert sub.quantity == newest.quantity
    assert sub.cancel_at_period_end == newest.cancel_at_period_end
    assert sub.current_period_end == newest.current_period_end
    assert sub.synced_at == timed[-1][0]

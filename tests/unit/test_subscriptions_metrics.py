"""The metrics rules without I/O: when a subscription started, monthly amounts, MRR and ARR, the range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from subscriptions_svc import domain
from subscriptions_svc.domain import PauseBehavior, PriceUnits, Status
from svckit.errors import InvalidArgument
from tests.unit.test_subscriptions_domain import PRICE, T0, record, snapshot


def test_a_subscription_starts_when_first_read_live_at_its_period_start() -> None:
    sub = record(Status.INCOMPLETE, stripe_subscription_id=None)
    domain.apply_snapshot(sub, snapshot(Status.INCOMPLETE), PRICE, T0, T0)
    assert sub.started_at is None
    later = T0 + timedelta(minutes=3)
    domain.apply_snapshot(sub, snapshot(Status.ACTIVE, current_period_start=later), PRICE, later, later)
    assert sub.started_at == later
    # Renewals, a past-due period and the end do not move it.
    renewal = T0 + timedelta(days=30)
    domain.apply_snapshot(sub, snapshot(Status.PAST_DUE, current_period_start=renewal), PRICE, renewal, renewal)
    domain.apply_snapshot(sub, snapshot(Status.CANCELED, ended_at=renewal), PRICE, renewal, renewal)
    assert sub.started_at == later


def test_a_reading_without_a_period_starts_it_at_the_reading() -> None:
    sub = record(Status.INCOMPLETE)
    domain.apply_snapshot(sub, snapshot(Status.TRIALING, current_period_start=None), PRICE, T0, T0)
    assert sub.started_at == T0


@pytest.mark.parametrize("status", [Status.INCOMPLETE_EXPIRED, Status.CANCELED])
def test_one_never_read_live_never_started(status: Status) -> None:
    sub = record(Status.INCOMPLETE)
    domain.apply_snapshot(sub, snapshot(status, ended_at=T0), PRICE, T0, T0)
    assert sub.started_at is None


def test_yearly_prices_count_a_twelfth_rounded_down_per_month() -> None:
    assert domain.monthly_amount(900, "month") == 900
    assert domain.monthly_amount(29000, "year") == 2416
    assert domain.monthly_amount(11, "year") == 0


def test_recurring_revenue_per_currency_times_the_units() -> None:
    revenue = domain.recurring_revenue(
        [
            PriceUnits("usd", "month", 900, 4),
            PriceUnits("usd", "year", 29000, 2),
            PriceUnits("eur", "month", 850, 1),
        ]
    )
    assert [(r.currency, r.mrr_minor, r.arr_minor) for r in revenue] == [
        ("eur", 850, 10200),
        ("usd", 3600 + 4832, 12 * (3600 + 4832)),
    ]


def test_only_billing_statuses_without_paused_collection_count_in_revenue() -> None:
    assert domain.counts_in_revenue(Status.ACTIVE, None)
    assert domain.counts_in_revenue(Status.PAST_DUE, None)
    assert not domain.counts_in_revenue(Status.ACTIVE, PauseBehavior.VOID)
    for status in set(Status) - domain.BILLING:
        assert not domain.counts_in_revenue(status, None)


def test_metrics_list_the_statuses_present_in_status_order() -> None:
    metrics = domain.subscription_metrics([], {Status.CANCELED: 2, Status.ACTIVE: 5, Status.PAUSED: 0}, 1, 2)
    assert metrics.by_status == [(Status.ACTIVE, 5), (Status.CANCELED, 2)]
    assert (metrics.new_subscriptions, metrics.churned_subscriptions) == (1, 2)
    assert metrics.recurring == []


def test_the_range_needs_both_ends_in_order() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert domain.MetricsRange(now, now + timedelta(days=1)).validate() == (now, now + timedelta(days=1))
    for since, until in [(None, now), (now, None), (now, now), (now + timedelta(seconds=1), now)]:
        with pytest.raises(InvalidArgument):
            domain.MetricsRange(since, until).validate()

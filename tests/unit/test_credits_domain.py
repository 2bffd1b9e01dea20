"""The ledger's rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credits_svc import domain
from svckit.errors import InvalidArgument
from svckit.pagination import DEFAULT_PAGE_SIZE, clamp_page_size

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def transfer(
    kind: domain.TransferKind = domain.TransferKind.GRANT, amount: int = 100, reversed_: int = 0
) -> domain.Transfer:
    wallet, system = domain.wallet_account("alice"), domain.SystemAccount.PURCHASE
    from_account, to_account = (system, wallet) if kind is domain.TransferKind.GRANT else (wallet, system)
    return domain.Transfer(
        id="tr_" + "a" * 32,
        kind=kind,
        amount=amount,
        user_id="alice",
        from_account=from_account,
        to_account=to_account,
        reference="ref",
        description="",
        actor="admin:root",
        created_at=NOW,
        reversed_amount=reversed_,
    )


def test_reversing_a_grant_takes_from_the_wallet_and_a_spend_gives_back() -> None:
    assert transfer(domain.TransferKind.GRANT).wallet_is_debited_on_reversal
    assert not transfer(domain.TransferKind.SPEND).wallet_is_debited_on_reversal


def test_a_full_reversal_takes_what_is_left() -> None:
    plan = domain.plan_reversal(transfer(amount=100, reversed_=30), None, 500, domain.ShortfallPolicy.REJECT)
    assert plan == domain.ReversalPlan(amount=70, shortfall=0)


def test_a_reversal_never_exceeds_what_is_left() -> None:
    with pytest.raises(domain.ReversalExceedsRemaining):
        domain.plan_reversal(transfer(amount=100, reversed_=30), 71, 500, domain.ShortfallPolicy.REJECT)


def test_a_transfer_reversed_in_full_is_not_reversible_again() -> None:
    with pytest.raises(domain.NotReversible):
        domain.plan_reversal(transfer(amount=100, reversed_=100), None, 500, domain.ShortfallPolicy.REJECT)


def test_a_reversal_is_not_reversible() -> None:
    with pytest.raises(domain.NotReversible):
        domain.plan_reversal(transfer(domain.TransferKind.REVERSAL), None, None, domain.ShortfallPolicy.REJECT)


def test_a_shortfall_is_rejected_or_reported_as_the_policy_says() -> None:
    with pytest.raises(domain.InsufficientCredits):
        domain.plan_reversal(transfer(amount=100), 80, 50, domain.ShortfallPolicy.REJECT)
    plan = domain.plan_reversal(transfer(amount=100), 80, 50, domain.ShortfallPolicy.REVERSE_AVAILABLE)
    assert plan == domain.ReversalPlan(amount=50, shortfall=30)


@given(
    amount=st.integers(1, 10_000),
    reversed_=st.integers(0, 10_000),
    requested=st.none() | st.integers(1, 10_000),
    balance=st.none() | st.integers(0, 10_000),
    policy=st.sampled_from(list(domain.ShortfallPolicy)),
)
def test_a_planned_reversal_never_overdraws_anything(
    amount: int, reversed_: int, requested: int | None, balance: int | None, policy: domain.ShortfallPolicy
) -> None:
    original = transfer(amount=amount, reversed_=min(reversed_, amount))
    try:
        plan = domain.plan_reversal(original, requested, balance, policy)
    except (domain.ReversalExceedsRemaining, domain.NotReversible, domain.InsufficientCredits):
        return
    wanted = original.remaining if requested is None else requested
    assert 0 <= plan.amount <= original.remaining
    assert plan.amount + plan.shortfall == wanted
    if balance is not None:
        assert plan.amount <= balance


def test_a_grant_reports_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        domain.GrantCredits(user_id="bad id!", amount=0, source=None, reference="", description="x" * 501).validate(NOW)
    assert [v.field for v in raised.value.violations] == ["user_id", "amount", "source", "reference", "description"]


@pytest.mark.parametrize("amount", [0, -1, domain.MAX_AMOUNT + 1])
def test_spend_amounts_are_bounded(amount: int) -> None:
    with pytest.raises(InvalidArgument):
        domain.SpendCredits("alice", amount, "job:1").validate()


def test_a_reversal_names_a_transfer_id() -> None:
    with pytest.raises(InvalidArgument) as raised:
        domain.ReverseTransfer("tr_nothex", None, "refund:1").validate()
    assert [v.field for v in raised.value.violations] == ["transfer_id"]


def test_the_ledger_report_is_balanced_only_when_every_rule_holds() -> None:
    clean = domain.LedgerReport(1, 1, 0, [], [], [])
    assert clean.balanced
    assert not domain.LedgerReport(1, 1, 1, [], [], []).balanced
    assert not domain.LedgerReport(1, 1, 0, [domain.AccountMismatch("user:a", 1, 0)], [], []).balanced
    assert not domain.LedgerReport(1, 1, 0, [], ["tr_x"], []).balanced
    assert not domain.LedgerReport(1, 1, 0, [], [], ["user:a"]).balanced


@pytest.mark.parametrize(("size", "expected"), [(0, DEFAULT_PAGE_SIZE), (1, 1), (200, 200)])
def test_page_sizes(size: int, expected: int) -> None:
    assert clamp_page_size(size) == expected


@pytest.mark.parametrize("size", [-1, 201])
def test_page_sizes_out_of_range_are_invalid(size: int) -> None:
    with pytest.raises(InvalidArgument):
        clamp_page_size(size)

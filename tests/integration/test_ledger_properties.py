"""Random sequences of grants, spends, reversals and replays keep every ledger invariant, on both databases.

A plain-Python model predicts each outcome; after every step the wallets must
equal the model and the ledger check must pass (each balance equals the sum of
its entries, each transfer is two matching entries, all balances sum to zero).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine

from credits_svc import domain
from credits_svc.service import CreditsService
from svckit.actors import Actor, ActorKind
from svckit.errors import BillingError
from svckit.idempotency import IdempotentCall
from tests.support.ledger import check_ledger, credits_service, migrated_engine

ADMIN = Actor(ActorKind.ADMIN, "property-test")
SOURCES = list(domain.GrantSource)
POLICIES = list(domain.ShortfallPolicy)


@dataclass
class ModelTransfer:
    id: str
    kind: domain.TransferKind
    user: str
    amount: int
    reversed: int = 0


@dataclass
class Replayable:
    method: str
    command: object
    call: IdempotentCall
    response: bytes


@dataclass
class Model:
    balances: dict[str, int] = field(default_factory=dict)
    transfers: dict[str, ModelTransfer] = field(default_factory=dict)


def encode_transfer(result: domain.TransferResult) -> bytes:
    return f"{result.transfer.id}|{result.balance}".encode()


def encode_reversal(result: domain.ReversalResult) -> bytes:
    transfer_id = result.transfer.id if result.transfer else "-"
    return f"{transfer_id}|{result.balance}|{result.shortfall}|{result.remaining}".encode()


def call_for(method: str) -> IdempotentCall:
    return IdempotentCall.for_request("property-test", uuid.uuid4().hex, method, uuid.uuid4().bytes)


def machine_for(engine: Engine) -> type[RuleBasedStateMachine]:
    service: CreditsService = credits_service(engine)

    class LedgerMachine(RuleBasedStateMachine):
        transfers = Bundle("transfers")
        replays = Bundle("replays")

        def __init__(self) -> None:
            super().__init__()
            prefix = uuid.uuid4().hex[:8]
            self.users = [f"{prefix}-{n}" for n in range(3)]
            self.model = Model(balances=dict.fromkeys(self.users, 0))

        def user(self, index: int) -> str:
            return self.users[index % len(self.users)]

        @rule(target=transfers, who=st.integers(0, 2), amount=st.integers(1, 100), source=st.sampled_from(SOURCES))
        def grant(self, who: int, amount: int, source: domain.GrantSource) -> str:
            user = self.user(who)
            cmd = domain.GrantCredits(user, amount, source, reference=uuid.uuid4().hex)
            outcome = service.grant(ADMIN, cmd, call_for("grant"), encode_transfer)
            transfer_id, balance = outcome.response.decode().split("|")
            self.model.balances[user] += amount
            assert int(balance) == self.model.balances[user]
            self.model.transfers[transfer_id] = ModelTransfer(transfer_id, domain.TransferKind.GRANT, user, amount)
            return transfer_id

        @rule(target=transfers, who=st.integers(0, 2), amount=st.integers(0, 150))
        def spend(self, who: int, amount: int) -> str:
            """amount 0 spends the whole balance (when there is one), so that wallets run dry often."""
            user = self.user(who)
            amount = amount or self.model.balances[user] or 1
            cmd = domain.SpendCredits(user, amount, reference=uuid.uuid4().hex)
            if self.model.balances[user] < amount:
                with pytest.raises(domain.InsufficientCredits):
                    service.spend(ADMIN, cmd, call_for("spend"), encode_transfer)
                return "none"
            outcome = service.spend(ADMIN, cmd, call_for("spend"), encode_transfer)
            transfer_id, balance = outcome.response.decode().split("|")
            self.model.balances[user] -= amount
            assert int(balance) == self.model.balances[user]
            self.model.transfers[transfer_id] = ModelTransfer(transfer_id, domain.TransferKind.SPEND, user, amount)
            return transfer_id

        @rule(
            target=transfers,
            transfer_id=transfers,
            amount=st.none() | st.integers(1, 120),
            policy=st.sampled_from(POLICIES),
        )
        def reverse(self, transfer_id: str, amount: int | None, policy: domain.ShortfallPolicy) -> str:
            original = self.model.transfers.get(transfer_id)
            if original is None:  # a spend that was refused
                return "none"
            cmd = domain.ReverseTransfer(transfer_id, amount, reference=uuid.uuid4().hex, policy=policy)
            remaining = original.amount - original.reversed
            wanted = remaining if amount is None else amount
            takes_from_wallet = original.kind is domain.TransferKind.GRANT
            available = self.model.balances[original.user] if takes_from_wallet else wanted
            expected_error: type[BillingError] | None = None
            if original.kind is domain.TransferKind.REVERSAL or (amount is None and remaining == 0):
                expected_error = domain.NotReversible
            elif wanted > remaining:
                expected_error = domain.ReversalExceedsRemaining
            elif available < wanted and policy is domain.ShortfallPolicy.REJECT:
                expected_error = domain.InsufficientCredits
            if expected_error is not None:
                with pytest.raises(expected_error):
                    service.reverse(ADMIN, cmd, call_for("reverse"), encode_reversal)
                return "none"
            moved = min(wanted, available)
            outcome = service.reverse(ADMIN, cmd, call_for("reverse"), encode_reversal)
            new_id, balance, shortfall, left = outcome.response.decode().split("|")
            original.reversed += moved
            self.model.balances[original.user] += -moved if takes_from_wallet else moved
            assert int(shortfall) == wanted - moved
            assert int(left) == original.amount - original.reversed
            assert int(balance) == self.model.balances[original.user]
            if new_id == "-":
                assert moved == 0
                return "none"
            self.model.transfers[new_id] = ModelTransfer(new_id, domain.TransferKind.REVERSAL, original.user, moved)
            return new_id

        @rule(target=replays, who=st.integers(0, 2), amount=st.integers(1, 50))
        def grant_for_replay(self, who: int, amount: int) -> Replayable:
            user = self.user(who)
            cmd = domain.GrantCredits(user, amount, domain.GrantSource.PROMOTION, reference=uuid.uuid4().hex)
            call = call_for("grant")
            outcome = service.grant(ADMIN, cmd, call, encode_transfer)
            assert not outcome.replayed
            transfer_id, _ = outcome.response.decode().split("|")
            self.model.balances[user] += amount
            self.model.transfers[transfer_id] = ModelTransfer(transfer_id, domain.TransferKind.GRANT, user, amount)
            return Replayable("grant", cmd, call, outcome.response)

        @rule(replay=consumes(replays))
        def replay_is_a_no_op(self, replay: Replayable) -> None:
            assert isinstance(replay.command, domain.GrantCredits)
            outcome = service.grant(ADMIN, replay.command, replay.call, encode_transfer)
            assert outcome.replayed
            assert outcome.response == replay.response

        @invariant()
        def wallets_match_the_model(self) -> None:
            for user in self.users:
                assert service.get_balance(ADMIN, user).balance == self.model.balances[user]

        @invariant()
        def ledger_is_balanced(self) -> None:
            report = check_ledger(engine)
            assert report.balanced, report

    return LedgerMachine


@pytest.mark.slow
def test_random_sequences_keep_the_ledger_invariants(any_database: str) -> None:
    engine = migrated_engine(any_database)
    try:
        run_state_machine_as_test(
            machine_for(engine),
            settings=settings(
                max_examples=100,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        engine.dispose()

"""Random sequences of grants, spends, holds, captures, releases, reversals, expiries and replays.

A plain-Python model of lots predicts each outcome: which lots a spend or a hold
draws from (priority, then soonest expiry, then oldest), what expires, what a
reversal takes back from the grant's own lot. After every step, on both
databases, every wallet's spendable and held credits and every lot must equal the
model's, and the ledger check must pass (balances equal their entries and their
lots, transfers balance, held credits equal the open holds).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine

from credits_svc import domain, lots
from credits_svc.expiry import run_expiry
from credits_svc.hold_service import HoldResult, HoldService
from credits_svc.lot_store import LotRepository
from credits_svc.models import idempotency_records
from credits_svc.service import CreditsService, new_transfer_id
from svckit.actors import Actor, ActorKind
from svckit.db import run_transaction
from svckit.errors import BillingError
from svckit.idempotency import IdempotencyStore, IdempotentCall
from tests.support.ledger import check_ledger, migrated_engine

ADMIN = Actor(ActorKind.ADMIN, "property-test")
SOURCES = list(domain.GrantSource)
POLICIES = list(domain.ShortfallPolicy)
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class ModelLot:
    id: str
    user: str
    priority: int
    expires_at: datetime | None
    created_at: datetime
    amount: int
    remaining: int
    expired: int = 0

    def order(self) -> tuple[int, datetime, datetime]:
        # Never expiring sorts after every expiry.
        return (self.priority, self.expires_at or datetime.max.replace(tzinfo=UTC), self.created_at)


@dataclass
class ModelTransfer:
    id: str
    kind: domain.TransferKind
    user: str
    amount: int
    reversed: int = 0
    # (lot id, credits) drawn, in drawing order; what reversals gave back per lot.
    draws: list[tuple[str, int]] = field(default_factory=list)
    returned: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelHold:
    id: str
    user: str
    amount: int
    expires_at: datetime
    draws: list[tuple[str, int]]
    open: bool = True


@dataclass
class Replayable:
    command: domain.GrantCredits
    call: IdempotentCall
    response: bytes


@dataclass
class Model:
    now: datetime = START
    lots: dict[str, ModelLot] = field(default_factory=dict)
    transfers: dict[str, ModelTransfer] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)

    def lots_of(self, user: str) -> list[ModelLot]:
        return [lot for lot in self.lots.values() if lot.user == user]

    def is_expired(self, lot: ModelLot) -> bool:
        return lot.expires_at is not None and lot.expires_at <= self.now

    def spendable(self, user: str) -> int:
        return sum(lot.remaining for lot in self.lots_of(user) if not self.is_expired(lot))

    def held(self, user: str) -> int:
        return sum(hold.amount for hold in self.holds.values() if hold.user == user and hold.open)

    def sweep(self, user: str) -> None:
        for lot in self.lots_of(user):
            if self.is_expired(lot) and lot.remaining:
                lot.expired += lot.remaining
                lot.remaining = 0

    def draw(self, user: str, amount: int) -> list[tuple[str, int]] | None:
        """Take `amount` from the user's lots in consumption order; None (and nothing changed) when too few."""
        if self.spendable(user) < amount:
            return None
        self.sweep(user)
        draws, left = [], amount
        for lot in sorted((x for x in self.lots_of(user) if x.remaining), key=ModelLot.order):
            take = min(lot.remaining, left)
            if take:
                lot.remaining -= take
                draws.append((lot.id, take))
                left -= take
        return draws

    def give_back(self, user: str, draws: list[tuple[str, int]]) -> None:
        for lot_id, amount in draws:
            self.lots[lot_id].remaining += amount
        self.sweep(user)


def encode_transfer(result: domain.TransferResult) -> bytes:
    draws = ",".join(f"{d.lot_id}:{d.amount}" for d in result.transfer.draws)
    return f"{result.transfer.id}|{result.balance}|{draws}".encode()


def encode_reversal(result: domain.ReversalResult) -> bytes:
    transfer_id = result.transfer.id if result.transfer else "-"
    return f"{transfer_id}|{result.shortfall}|{result.remaining}".encode()


def encode_hold(result: HoldResult) -> bytes:
    h = result.hold
    draws = ",".join(f"{d.lot_id}:{d.amount}" for d in result.draws)
    return f"{h.id}|{h.status.value}|{h.captured}|{h.capture_transfer_id or '-'}|{draws}".encode()


def parse_draws(text: str) -> list[tuple[str, int]]:
    return [(part.split(":")[0], int(part.split(":")[1])) for part in text.split(",") if part]


def call_for(method: str) -> IdempotentCall:
    return IdempotentCall.for_request("property-test", uuid.uuid4().hex, method, uuid.uuid4().bytes)


def machine_for(engine: Engine) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        transfers = Bundle("transfers")
        holds = Bundle("holds")
        replays = Bundle("replays")

        def __init__(self) -> None:
            super().__init__()
            prefix = uuid.uuid4().hex[:8]
            self.users = [f"{prefix}-{n}" for n in range(2)]
            self.model = Model()
            store = IdempotencyStore(idempotency_records)
            self.service = CreditsService(engine, store, clock=lambda: self.model.now)
            self.hold_service = HoldService(engine, store, new_transfer_id, clock=lambda: self.model.now)

        def user(self, index: int) -> str:
            return self.users[index % len(self.users)]

        def tick(self) -> None:
            """Every write happens a moment after the last: lots are ordered by their creation."""
            self.model.now += timedelta(milliseconds=1)

        # --- grants -----------------------------------------------------------------

        @rule(
            target=transfers,
            who=st.integers(0, 1),
            amount=st.integers(1, 100),
            source=st.sampled_from(SOURCES),
            priority=st.none() | st.integers(0, 100),
            expires_in=st.none() | st.integers(1, 120),
        )
        def grant(
            self,
            who: int,
            amount: int,
            source: domain.GrantSource,
            priority: int | None,
            expires_in: int | None,
        ) -> str:
            self.tick()
            user = self.user(who)
            expires_at = None if expires_in is None else self.model.now + timedelta(seconds=expires_in)
            terms = domain.LotTerms(priority=priority, expires_at=expires_at)
            cmd = domain.GrantCredits(user, amount, source, reference=uuid.uuid4().hex, terms=terms)
            outcome = self.service.grant(ADMIN, cmd, call_for("grant"), encode_transfer)
            transfer_id = outcome.response.decode().split("|")[0]
            category = lots.CATEGORY_OF_SOURCE[source]
            self.model.lots[transfer_id] = ModelLot(
                transfer_id,
                user,
                lots.DEFAULT_PRIORITY[category] if priority is None else priority,
                expires_at,
                self.model.now,
                amount,
                amount,
            )
            self.model.transfers[transfer_id] = ModelTransfer(transfer_id, domain.TransferKind.GRANT, user, amount)
            return transfer_id

        @rule(target=replays, who=st.integers(0, 1), amount=st.integers(1, 50))
        def grant_for_replay(self, who: int, amount: int) -> Replayable:
            self.tick()
            user = self.user(who)
            cmd = domain.GrantCredits(user, amount, domain.GrantSource.PROMOTION, reference=uuid.uuid4().hex)
            call = call_for("grant")
            outcome = self.service.grant(ADMIN, cmd, call, encode_transfer)
            assert not outcome.replayed
            transfer_id = outcome.response.decode().split("|")[0]
            self.model.lots[transfer_id] = ModelLot(
                transfer_id,
                user,
                lots.DEFAULT_PRIORITY[lots.LotCategory.PROMOTIONAL],
                None,
                self.model.now,
                amount,
                amount,
            )
            self.model.transfers[transfer_id] = ModelTransfer(transfer_id, domain.TransferKind.GRANT, user, amount)
            return Replayable(cmd, call, outcome.response)

        @rule(replay=consumes(replays))
        def replay_is_a_no_op(self, replay: Replayable) -> None:
            outcome = self.service.grant(ADMIN, replay.command, replay.call, encode_transfer)
            assert outcome.replayed
            assert outcome.response == replay.response

        # --- spends and holds -------------------------------------------------------

        @rule(target=transfers, who=st.integers(0, 1), amount=st.integers(0, 150))
        def spend(self, who: int, amount: int) -> str:
            """amount 0 spends all that is spendable (when anything is), so that wallets run dry often."""
            self.tick()
            user = self.user(who)
            amount = amount or self.model.spendable(user) or 1
            cmd = domain.SpendCredits(user, amount, reference=uuid.uuid4().hex)
            expected = self.model.draw(user, amount)
            if expected is None:
                with pytest.raises(domain.InsufficientCredits):
                    self.service.spend(ADMIN, cmd, call_for("spend"), encode_transfer)
                return "none"
            outcome = self.service.spend(ADMIN, cmd, call_for("spend"), encode_transfer)
            transfer_id, balance, draws = outcome.response.decode().split("|")
            assert parse_draws(draws) == expected
            assert int(balance) == self.model.spendable(user)
            self.model.transfers[transfer_id] = ModelTransfer(
                transfer_id, domain.TransferKind.SPEND, user, amount, draws=expected
            )
            return transfer_id

        @rule(target=holds, who=st.integers(0, 1), amount=st.integers(1, 120), timeout=st.integers(1, 120))
        def hold(self, who: int, amount: int, timeout: int) -> str:
            self.tick()
            user = self.user(who)
            cmd = lots.PlaceHold(user, amount, uuid.uuid4().hex, timedelta(seconds=timeout))
            expected = self.model.draw(user, amount)
            if expected is None:
                with pytest.raises(domain.InsufficientCredits):
                    self.hold_service.place(ADMIN, cmd, call_for("hold"), encode_hold)
                return "none"
            outcome = self.hold_service.place(ADMIN, cmd, call_for("hold"), encode_hold)
            hold_id, status, _, _, draws = outcome.response.decode().split("|")
            assert status == "open"
            assert parse_draws(draws) == expected
            self.model.holds[hold_id] = ModelHold(hold_id, user, amount, self.model.now + cmd.timeout, expected)
            return hold_id

        @rule(target=transfers, hold_id=holds, amount=st.none() | st.integers(1, 130))
        def capture(self, hold_id: str, amount: int | None) -> str:
            self.tick()
            hold = self.model.holds.get(hold_id)
            if hold is None:
                return "none"
            cmd = lots.CaptureHold(hold_id, amount)
            captured = hold.amount if amount is None else amount
            expected_error: type[BillingError] | None = None
            if not hold.open or hold.expires_at <= self.model.now:
                expected_error = lots.HoldSettled
            elif captured > hold.amount:
                expected_error = lots.CaptureExceedsHold
            if expected_error is not None:
                with pytest.raises(expected_error):
                    self.hold_service.capture(ADMIN, cmd, call_for("capture"), encode_hold)
                return "none"
            outcome = self.hold_service.capture(ADMIN, cmd, call_for("capture"), encode_hold)
            _, status, got, capture_id, _ = outcome.response.decode().split("|")
            assert (status, int(got)) == ("captured", captured)
            hold.open = False
            self.model.sweep(hold.user)
            taken, back, left = [], [], captured
            for lot_id, drawn in hold.draws:
                take = min(drawn, left)
                left -= take
                if take:
                    taken.append((lot_id, take))
                if drawn - take:
                    back.append((lot_id, drawn - take))
            self.model.give_back(hold.user, back)
            self.model.transfers[capture_id] = ModelTransfer(
                capture_id, domain.TransferKind.CAPTURE, hold.user, captured, draws=taken
            )
            return capture_id

        @rule(hold_id=holds)
        def release(self, hold_id: str) -> None:
            self.tick()
            hold = self.model.holds.get(hold_id)
            if hold is None:
                return
            if not hold.open:
                with pytest.raises(lots.HoldSettled):
                    self.hold_service.release(ADMIN, hold_id, call_for("release"), encode_hold)
                return
            outcome = self.hold_service.release(ADMIN, hold_id, call_for("release"), encode_hold)
            status = outcome.response.decode().split("|")[1]
            assert status == ("expired" if hold.expires_at <= self.model.now else "released")
            hold.open = False
            self.model.sweep(hold.user)
            self.model.give_back(hold.user, hold.draws)

        # --- reversals ---------------------------------------------------------------

        @rule(
            target=transfers,
            transfer_id=transfers,
            amount=st.none() | st.integers(1, 120),
            policy=st.sampled_from(POLICIES),
        )
        def reverse(self, transfer_id: str, amount: int | None, policy: domain.ShortfallPolicy) -> str:
            self.tick()
            original = self.model.transfers.get(transfer_id)
            if original is None:  # a spend or a capture that was refused
                return "none"
            cmd = domain.ReverseTransfer(transfer_id, amount, reference=uuid.uuid4().hex, policy=policy)
            remaining = original.amount - original.reversed
            wanted = remaining if amount is None else amount
            is_grant = original.kind is domain.TransferKind.GRANT
            lot = self.model.lots.get(original.id)
            if is_grant:
                assert lot is not None
                available = 0 if self.model.is_expired(lot) else lot.remaining
            else:
                available = wanted
            expected_error: type[BillingError] | None = None
            if original.kind is domain.TransferKind.REVERSAL or (amount is None and remaining == 0):
                expected_error = domain.NotReversible
            elif wanted > remaining:
                expected_error = domain.ReversalExceedsRemaining
            elif available < wanted and policy is domain.ShortfallPolicy.REJECT:
                expected_error = domain.InsufficientCredits
            if expected_error is not None:
                with pytest.raises(expected_error):
                    self.service.reverse(ADMIN, cmd, call_for("reverse"), encode_reversal)
                return "none"
            moved = min(wanted, available)
            if is_grant:
                self.model.sweep(original.user)
            outcome = self.service.reverse(ADMIN, cmd, call_for("reverse"), encode_reversal)
            new_id, shortfall, left = outcome.response.decode().split("|")
            original.reversed += moved
            assert int(shortfall) == wanted - moved
            assert int(left) == original.amount - original.reversed
            if new_id == "-":
                assert moved == 0
                return "none"
            if is_grant:
                assert lot is not None
                lot.remaining -= moved
            else:
                back, need = [], moved
                for lot_id, drawn in reversed(original.draws):
                    room = drawn - original.returned.get(lot_id, 0)
                    take = min(room, need)
                    if take > 0:
                        back.append((lot_id, take))
                        original.returned[lot_id] = original.returned.get(lot_id, 0) + take
                        need -= take
                assert need == 0
                self.model.give_back(original.user, back)
            self.model.transfers[new_id] = ModelTransfer(new_id, domain.TransferKind.REVERSAL, original.user, moved)
            return new_id

        # --- time and the expiry job ---------------------------------------------------

        @rule(seconds=st.integers(1, 90))
        def time_passes(self, seconds: int) -> None:
            self.model.now += timedelta(seconds=seconds)

        @rule()
        def expiry_job(self) -> None:
            run_expiry(engine, self.hold_service, new_transfer_id, clock=lambda: self.model.now)
            for user in self.users:
                self.model.sweep(user)
            for hold in self.model.holds.values():
                if hold.open and hold.expires_at <= self.model.now:
                    hold.open = False
                    self.model.give_back(hold.user, hold.draws)

        # --- invariants ----------------------------------------------------------------

        @invariant()
        def wallets_match_the_model(self) -> None:
            for user in self.users:
                balance = self.service.get_balance(ADMIN, user)
                assert (balance.balance, balance.held) == (self.model.spendable(user), self.model.held(user))

        @invariant()
        def lots_match_the_model(self) -> None:
            for user in self.users:
                stored = run_transaction(
                    engine, lambda conn, user=user: LotRepository(conn).list_lots(user, with_empty=True), read_only=True
                )
                got = {lot.id: (lot.remaining, lot.expired_amount) for lot in stored}
                want = {lot.id: (lot.remaining, lot.expired) for lot in self.model.lots_of(user)}
                assert got == want

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
                max_examples=60,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        engine.dispose()

"""One wallet inside a transaction: its row locked, then its lots; every movement of credits in or out.

Each method writes a transfer (and its two ledger entries) together with the lot
movements that explain it, so a wallet's balance and the sum of its lots' remaining
credits never disagree, whatever is committed (`LotRepository.check` proves it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection

from credits_svc import domain
from credits_svc import lots as rules
from credits_svc.lot_store import LotRepository
from credits_svc.repository import LedgerRepository
from svckit.errors import Aborted

# Lots read per spend: enough for nearly every spend; a spend that needs more reads them all.
DRAW_BATCH = 32


class Wallet:
    """A user's wallet for the rest of the transaction: its row is locked before any lot is read.

    Only the lots a movement needs are read: those past their expiry (to sweep) and the
    first ones in consumption order, so a wallet with many lots costs no more to spend from.
    """

    def __init__(
        self,
        conn: Connection,
        user_id: str,
        now: datetime,
        new_id: Callable[[], str],
        actor: str,
    ) -> None:
        self.ledger = LedgerRepository(conn)
        self.lots = LotRepository(conn)
        self.user_id = user_id
        self.now = now
        self.new_id = new_id
        self.actor = actor
        self.balance = 0
        self._locked = False

    def lock(self) -> None:
        """Lock the wallet's row (once): every change to its lots happens under this lock."""
        if not self._locked:
            self.balance = self.ledger.lock_wallet_balance(self.user_id)
            self._locked = True

    @property
    def account(self) -> str:
        return domain.wallet_account(self.user_id)

    def _transfer(
        self, kind: domain.TransferKind, amount: int, from_account: str, to_account: str, **fields: object
    ) -> domain.Transfer:
        return domain.Transfer(
            id=self.new_id(),
            kind=kind,
            amount=amount,
            user_id=self.user_id,
            from_account=from_account,
            to_account=to_account,
            actor=self.actor,
            created_at=self.now,
            **fields,  # type: ignore[arg-type]
        )

    def _record(self, transfer: domain.Transfer, balance: int) -> None:
        if not self.ledger.add_transfer(transfer, balance):
            raise domain.DuplicateReference(transfer.reference)

    def _debit(self, amount: int) -> int:
        balance = self.ledger.debit_wallet(self.user_id, amount, self.now)
        if balance is None:
            raise domain.InsufficientCredits(self.user_id, amount)
        self.balance = balance
        return balance

    def _credit(self, amount: int) -> int:
        self.balance = self.ledger.credit_wallet(self.user_id, amount, self.now)
        return self.balance

    # --- out of the wallet ------------------------------------------------------------

    def sweep_expired(self) -> list[domain.Transfer]:
        """Move every expired lot's remainder to the expiry account, one expiry transfer per lot."""
        self.lock()
        swept = []
        while True:
            due = self.lots.lock_expired_lots(self.user_id, self.now, DRAW_BATCH)
            swept.extend(self._expire(due))
            if len(due) < DRAW_BATCH:
                return swept

    def _expire(self, due: list[rules.Lot]) -> list[domain.Transfer]:
        swept = []
        for lot in due:
            assert lot.expires_at is not None  # expired
            transfer = self._transfer(
                domain.TransferKind.EXPIRY,
                lot.remaining,
                self.account,
                domain.SystemAccount.EXPIRED,
                # A lot expires again when a release or a reversal gives credits back to it
                # after its expiry: the reference names the lot's expired total after this one.
                reference=f"expiry:{lot.id}:{lot.expired_amount + lot.remaining}",
                description=f"{lot.remaining} {lot.category.value} credits of lot {lot.id} "
                f"expired at {lot.expires_at.isoformat()}",
            )
            self._record(transfer, self._debit(lot.remaining))
            self.lots.expire(transfer.id, lot, self.now)
            swept.append(transfer)
        return swept

    def draw(self, amount: int) -> list[domain.Draw]:
        """Which lots `amount` credits come from (sweep first); InsufficientCredits when they hold too few."""
        self.lock()
        first = self.lots.lock_spendable_lots(self.user_id, self.now, DRAW_BATCH)
        draws = rules.allocate(first, amount, self.now)
        if draws is None and len(first) == DRAW_BATCH:
            draws = rules.allocate(self.lots.lock_spendable_lots(self.user_id, self.now, None), amount, self.now)
        if draws is None:
            raise domain.InsufficientCredits(self.user_id, amount)
        return draws

    def take(
        self, kind: domain.TransferKind, amount: int, to: str, reference: str, description: str
    ) -> tuple[domain.Transfer, list[domain.Draw]]:
        """A spend or a hold: credits out of the lots in consumption order, into `to`."""
        self.sweep_expired()
        draws = self.draw(amount)
        transfer = self._transfer(kind, amount, self.account, to, reference=reference, description=description)
        self._record(transfer, self._debit(amount))
        self.lots.move(transfer.id, draws, -1)
        return transfer, draws

    def take_back_grant(
        self,
        original: domain.Transfer,
        requested: int | None,
        reference: str,
        reason: str,
        policy: domain.ShortfallPolicy,
    ) -> domain.ReversalResult:
        """Reverse a grant: credits back out of the lot the grant opened, never from other lots.

        A grant made before lots existed has no lot of its own; its credits come out
        of the wallet's lots in consumption order.
        """
        self.sweep_expired()
        lot = self.lots.lock_lot(original.id)
        own_lot = lot is not None
        # Swept above: an expired lot of its own holds nothing; without one, the whole wallet is spendable.
        available = lot.remaining if lot is not None else self.balance
        plan = domain.plan_reversal(original, requested, available, policy)
        if plan.amount == 0:
            return domain.ReversalResult(None, self.balance, plan.shortfall, original.remaining)
        if not self.ledger.add_reversed(original.id, plan.amount):
            raise Aborted("the transfer was reversed concurrently; retry")
        draws = [domain.Draw(original.id, plan.amount)] if own_lot else self.draw(plan.amount)
        transfer = self._reversal(original, plan.amount, reference, reason, self.account, original.from_account)
        self._record(transfer, self._debit(plan.amount))
        self.lots.move(transfer.id, draws, -1)
        return domain.ReversalResult(transfer, self.balance, plan.shortfall, original.remaining - plan.amount)

    # --- holds ------------------------------------------------------------------------

    def place_hold(self, hold_id: str, cmd: rules.PlaceHold) -> rules.Hold:
        """Reserve credits: out of the lots in consumption order into the held account."""
        transfer, _ = self.take(
            domain.TransferKind.HOLD, cmd.amount, domain.SystemAccount.HELD, cmd.reference, cmd.description
        )
        hold = rules.Hold(
            id=hold_id,
            user_id=self.user_id,
            amount=cmd.amount,
            captured=0,
            status=rules.HoldStatus.OPEN,
            reference=cmd.reference,
            description=cmd.description,
            expires_at=self.now + cmd.timeout,
            created_at=self.now,
            hold_transfer_id=transfer.id,
        )
        if not self.lots.add_hold(hold):
            raise domain.DuplicateReference(cmd.reference)
        return hold

    def settle_hold(self, hold: rules.Hold, captured: int, status: rules.HoldStatus) -> rules.Hold:
        """Spend `captured` of the held credits (those drawn first) and give the rest back to their lots."""
        self.sweep_expired()
        drawn = [domain.Draw(d.lot_id, -d.amount) for d in self.lots.movements(hold.hold_transfer_id)]
        _, back = rules.split_capture(drawn, captured)
        capture_id = release_id = None
        if captured:
            capture = self._transfer(
                domain.TransferKind.CAPTURE,
                captured,
                domain.SystemAccount.HELD,
                domain.SystemAccount.SPEND,
                reference=f"capture:{hold.id}",
                description=hold.description,
            )
            self._record(capture, self.balance)
            capture_id = capture.id
        if back:
            release = self._transfer(
                domain.TransferKind.RELEASE,
                sum(d.amount for d in back),
                domain.SystemAccount.HELD,
                self.account,
                reference=f"release:{hold.id}",
                description=f"{status.value}: credits of hold {hold.id} not captured",
            )
            self.give_back(release, back)
            release_id = release.id
        settled = replace(
            hold,
            status=status,
            captured=captured,
            settled_at=self.now,
            capture_transfer_id=capture_id,
            release_transfer_id=release_id,
        )
        self.lots.settle_hold(settled)
        return settled

    # --- into the wallet --------------------------------------------------------------

    def grant(self, cmd: domain.GrantCredits) -> domain.TransferResult:
        source = cmd.source
        assert source is not None  # validated
        transfer = self._transfer(
            domain.TransferKind.GRANT,
            cmd.amount,
            domain.GRANT_ACCOUNTS[source],
            self.account,
            source=source,
            reference=cmd.reference,
            description=cmd.description,
        )
        self._record(transfer, self._credit(cmd.amount))
        category = rules.CATEGORY_OF_SOURCE[source]
        self.lots.open_lot(
            rules.Lot(
                id=transfer.id,
                user_id=self.user_id,
                category=category,
                priority=rules.priority_for(cmd.terms, category),
                amount=cmd.amount,
                remaining=cmd.amount,
                expires_at=cmd.terms.expires_at,
                created_at=self.now,
                value_minor=cmd.terms.value_minor,
                currency=cmd.terms.currency,
            )
        )
        return domain.TransferResult(transfer, self.balance)

    def give_back(self, transfer: domain.Transfer, draws: Sequence[domain.Draw]) -> None:
        """Record a transfer into the wallet that returns `draws` to their lots; expired ones then expire."""
        self.lock()
        self._record(transfer, self._credit(transfer.amount))
        self.lots.move(transfer.id, draws, +1)
        self.sweep_expired()

    def return_spend(
        self, original: domain.Transfer, drawn: Sequence[domain.Draw], amount: int, reference: str, reason: str
    ) -> domain.Transfer:
        """Reverse (part of) a spend or capture: credits back to the lots it drew from, the last drawn first.

        A spend made before lots existed drew from no lot: its credits come back as a new paid lot.
        """
        transfer = self._reversal(original, amount, reference, reason, domain.SystemAccount.SPEND, self.account)
        if drawn:
            back = rules.give_back(drawn, self.lots.returned_by_reversals(original.id), amount)
            self.give_back(transfer, back)
            return transfer
        self._record(transfer, self._credit(amount))
        category = rules.LotCategory.PAID
        self.lots.open_lot(
            rules.Lot(
                id=transfer.id,
                user_id=self.user_id,
                category=category,
                priority=rules.DEFAULT_PRIORITY[category],
                amount=amount,
                remaining=amount,
                expires_at=None,
                created_at=self.now,
            )
        )
        return transfer

    def _reversal(
        self, original: domain.Transfer, amount: int, reference: str, reason: str, from_account: str, to_account: str
    ) -> domain.Transfer:
        return self._transfer(
            domain.TransferKind.REVERSAL,
            amount,
            from_account,
            to_account,
            source=original.source,
            reference=reference,
            description=reason,
            reverses_transfer_id=original.id,
        )

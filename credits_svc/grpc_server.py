"""billing.credits.v1.CreditsService over gRPC: proto in, use case, proto out. No rules, no SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1.money_pb2 import Money
from billing.credits.v1 import credits_pb2 as pb
from billing.credits.v1 import credits_pb2_grpc
from credits_svc import domain, lots
from credits_svc.hold_service import HoldResult, HoldService
from credits_svc.service import CreditsService
from svckit.admin_pb import audit_to_pb, chain_to_pb
from svckit.audit import AuditFilter
from svckit.errors import FieldViolation, InvalidArgument
from svckit.pagination import decode_int_position, decode_page_token, encode_page_token
from svckit.server import current_call, in_thread

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CreditsService"].full_name

KIND_TO_PB = {
    domain.TransferKind.GRANT: pb.TRANSFER_KIND_GRANT,
    domain.TransferKind.SPEND: pb.TRANSFER_KIND_SPEND,
    domain.TransferKind.REVERSAL: pb.TRANSFER_KIND_REVERSAL,
    domain.TransferKind.EXPIRY: pb.TRANSFER_KIND_EXPIRY,
    domain.TransferKind.HOLD: pb.TRANSFER_KIND_HOLD,
    domain.TransferKind.CAPTURE: pb.TRANSFER_KIND_CAPTURE,
    domain.TransferKind.RELEASE: pb.TRANSFER_KIND_RELEASE,
}
CATEGORY_TO_PB = {
    lots.LotCategory.PAID: pb.LOT_CATEGORY_PAID,
    lots.LotCategory.SUBSCRIPTION: pb.LOT_CATEGORY_SUBSCRIPTION,
    lots.LotCategory.PROMOTIONAL: pb.LOT_CATEGORY_PROMOTIONAL,
}
HOLD_STATUS_TO_PB = {
    lots.HoldStatus.OPEN: pb.HOLD_STATUS_OPEN,
    lots.HoldStatus.CAPTURED: pb.HOLD_STATUS_CAPTURED,
    lots.HoldStatus.RELEASED: pb.HOLD_STATUS_RELEASED,
    lots.HoldStatus.EXPIRED: pb.HOLD_STATUS_EXPIRED,
}
SOURCE_TO_PB = {
    domain.GrantSource.PURCHASE: pb.GRANT_SOURCE_PURCHASE,
    domain.GrantSource.SUBSCRIPTION: pb.GRANT_SOURCE_SUBSCRIPTION,
    domain.GrantSource.PROMOTION: pb.GRANT_SOURCE_PROMOTION,
    domain.GrantSource.ADJUSTMENT: pb.GRANT_SOURCE_ADJUSTMENT,
}
SOURCE_FROM_PB = {value: key for key, value in SOURCE_TO_PB.items()}
KIND_FROM_PB = {value: key for key, value in KIND_TO_PB.items()}
AUDIT_SERVICE = "credits"
POLICY_FROM_PB = {
    pb.SHORTFALL_POLICY_UNSPECIFIED: domain.ShortfallPolicy.REJECT,
    pb.SHORTFALL_POLICY_REJECT: domain.ShortfallPolicy.REJECT,
    pb.SHORTFALL_POLICY_REVERSE_AVAILABLE: domain.ShortfallPolicy.REVERSE_AVAILABLE,
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _moment(message: Any, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime, None when unset."""
    if not message.HasField(field):
        return None
    moment: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return moment


def encode_time_position(position: tuple[datetime, str] | None) -> str:
    """The page token after the row at (time, id); '' when no page follows."""
    if position is None:
        return ""
    at, ident = position
    return encode_page_token({"before_time": at.isoformat(), "before_id": ident})


def decode_time_position(token: str) -> tuple[datetime, str] | None:
    position = decode_page_token(token)
    if not position:
        return None
    at, ident = position.get("before_time"), position.get("before_id")
    try:
        if isinstance(at, str) and isinstance(ident, str) and ident:
            moment = datetime.fromisoformat(at)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC), ident
    except ValueError:
        pass
    raise InvalidArgument.from_violations([FieldViolation("page_token", "not a page token this service issued")])


def transfer_to_pb(t: domain.Transfer) -> pb.Transfer:
    return pb.Transfer(
        id=t.id,
        kind=KIND_TO_PB[t.kind],
        amount=t.amount,
        user_id=t.user_id,
        from_account=t.from_account,
        to_account=t.to_account,
        source=SOURCE_TO_PB[t.source] if t.source else pb.GRANT_SOURCE_UNSPECIFIED,
        reference=t.reference,
        description=t.description,
        reverses_transfer_id=t.reverses_transfer_id or "",
        reversed_amount=t.reversed_amount,
        actor=t.actor,
        create_time=_timestamp(t.created_at),
        draws=_draws_to_pb(t.draws),
    )


def _draws_to_pb(draws: Iterable[domain.Draw]) -> list[pb.LotDraw]:
    return [pb.LotDraw(lot_id=d.lot_id, amount=d.amount) for d in draws]


def _money(amounts: dict[str, int]) -> list[Money]:
    return [Money(currency=currency, amount_minor=amount) for currency, amount in sorted(amounts.items())]


def lot_to_pb(lot: lots.Lot, now: datetime) -> pb.Lot:
    message = pb.Lot(
        id=lot.id,
        user_id=lot.user_id,
        category=CATEGORY_TO_PB[lot.category],
        priority=lot.priority,
        amount=lot.amount,
        remaining=lot.remaining,
        create_time=_timestamp(lot.created_at),
        expired=lot.is_expired(now),
    )
    if lot.expires_at is not None:
        message.expire_time.CopyFrom(_timestamp(lot.expires_at))
    if lot.currency:
        message.value.CopyFrom(Money(currency=lot.currency, amount_minor=lot.value_minor))
    return message


def hold_to_pb(hold: lots.Hold, draws: Iterable[domain.Draw]) -> pb.Hold:
    message = pb.Hold(
        id=hold.id,
        user_id=hold.user_id,
        amount=hold.amount,
        captured=hold.captured,
        status=HOLD_STATUS_TO_PB[hold.status],
        reference=hold.reference,
        description=hold.description,
        expire_time=_timestamp(hold.expires_at),
        create_time=_timestamp(hold.created_at),
        draws=_draws_to_pb(draws),
    )
    if hold.settled_at is not None:
        message.settle_time.CopyFrom(_timestamp(hold.settled_at))
    return message


def entry_to_pb(e: domain.LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        id=e.id,
        transfer_id=e.transfer_id,
        kind=KIND_TO_PB[e.kind],
        amount=e.amount,
        balance_after=e.balance_after,
        reference=e.reference,
        description=e.description,
        create_time=_timestamp(e.created_at),
    )


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data


class CreditsServicer(credits_pb2_grpc.CreditsServiceServicer):
    def __init__(self, service: CreditsService, holds: HoldService) -> None:
        self.service = service
        self.holds = holds

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Any) -> pb.GetBalanceResponse:
        balance = await in_thread(self.service.get_balance, current_call().actor, request.user_id)
        response = pb.GetBalanceResponse(user_id=balance.user_id, balance=balance.balance, held=balance.held)
        if balance.updated_at is not None:
            response.update_time.CopyFrom(_timestamp(balance.updated_at))
        return response

    async def ListEntries(self, request: pb.ListEntriesRequest, context: Any) -> pb.ListEntriesResponse:
        before_id = decode_int_position(request.page_token, "before")
        page = await in_thread(
            self.service.list_entries, current_call().actor, request.user_id, request.page_size, before_id
        )
        return pb.ListEntriesResponse(
            entries=[entry_to_pb(e) for e in page.entries],
            next_page_token=encode_page_token({"before": page.next_before_id}) if page.next_before_id else "",
        )

    async def GetTransfer(self, request: pb.GetTransferRequest, context: Any) -> pb.GetTransferResponse:
        transfer = await in_thread(
            self.service.get_transfer,
            current_call().actor,
            transfer_id=request.transfer_id,
            reference=request.reference,
        )
        return pb.GetTransferResponse(transfer=transfer_to_pb(transfer))

    async def Grant(self, request: pb.GrantRequest, context: Any) -> pb.GrantResponse:
        call = current_call()
        cmd = domain.GrantCredits(
            user_id=request.user_id,
            amount=request.amount,
            source=SOURCE_FROM_PB.get(request.source),
            reference=request.reference,
            description=request.description,
            terms=domain.LotTerms(
                priority=request.priority if request.HasField("priority") else None,
                expires_at=_moment(request, "expire_time"),
                value_minor=request.value.amount_minor,
                currency=request.value.currency or None,
            ),
        )

        def encode(result: domain.TransferResult) -> bytes:
            return _serialize(pb.GrantResponse(transfer=transfer_to_pb(result.transfer), balance=result.balance))

        outcome = await in_thread(self.service.grant, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.GrantResponse.FromString(outcome.response)

    async def Spend(self, request: pb.SpendRequest, context: Any) -> pb.SpendResponse:
        call = current_call()
        cmd = domain.SpendCredits(
            user_id=request.user_id,
            amount=request.amount,
            reference=request.reference,
            description=request.description,
        )

        def encode(result: domain.TransferResult) -> bytes:
            return _serialize(pb.SpendResponse(transfer=transfer_to_pb(result.transfer), balance=result.balance))

        outcome = await in_thread(self.service.spend, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.SpendResponse.FromString(outcome.response)

    async def Reverse(self, request: pb.ReverseRequest, context: Any) -> pb.ReverseResponse:
        call = current_call()
        cmd = domain.ReverseTransfer(
            transfer_id=request.transfer_id,
            amount=request.amount if request.HasField("amount") else None,
            reference=request.reference,
            reason=request.reason,
            policy=POLICY_FROM_PB.get(request.shortfall_policy, domain.ShortfallPolicy.REJECT),
        )

        def encode(result: domain.ReversalResult) -> bytes:
            response = pb.ReverseResponse(
                balance=result.balance, shortfall=result.shortfall, remaining=result.remaining
            )
            if result.transfer is not None:
                response.transfer.CopyFrom(transfer_to_pb(result.transfer))
            return _serialize(response)

        outcome = await in_thread(self.service.reverse, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.ReverseResponse.FromString(outcome.response)

    async def GetCreditTotals(self, request: pb.GetCreditTotalsRequest, context: Any) -> pb.GetCreditTotalsResponse:
        totals = await in_thread(
            self.service.credit_totals, current_call().actor, _moment(request, "since"), _moment(request, "until")
        )
        return pb.GetCreditTotalsResponse(
            granted=totals.granted,
            spent=totals.spent,
            reversed=totals.reversed,
            expired=totals.expired,
            outstanding=totals.outstanding,
            granted_by_source=[
                pb.SourceTotal(source=SOURCE_TO_PB[source], granted=granted)
                for source, granted in totals.granted_by_source.items()
            ],
        )

    async def ListTransfers(self, request: pb.ListTransfersRequest, context: Any) -> pb.ListTransfersResponse:
        before = decode_time_position(request.page_token)
        if request.kind and request.kind not in KIND_FROM_PB:
            raise InvalidArgument.from_violations([FieldViolation("kind", "not a transfer kind")])
        where = domain.TransferFilter(
            user_id=request.user_id,
            kind=KIND_FROM_PB.get(request.kind),
            since=_moment(request, "since"),
            until=_moment(request, "until"),
        )
        page = await in_thread(self.service.list_transfers, current_call().actor, where, request.page_size, before)
        return pb.ListTransfersResponse(
            transfers=[transfer_to_pb(t) for t in page.transfers],
            next_page_token=encode_time_position(page.next_before),
        )

    async def ListAuditRecords(self, request: pb.ListAuditRecordsRequest, context: Any) -> pb.ListAuditRecordsResponse:
        before = decode_time_position(request.page_token)
        where = AuditFilter(
            actor=request.actor,
            action=request.action,
            since=_moment(request, "since"),
            until=_moment(request, "until"),
        )
        records, next_before = await in_thread(
            self.service.list_audit_records, current_call().actor, where, request.page_size, before
        )
        return pb.ListAuditRecordsResponse(
            records=[audit_to_pb(r, AUDIT_SERVICE) for r in records], next_page_token=encode_time_position(next_before)
        )

    async def CheckLedger(self, request: pb.CheckLedgerRequest, context: Any) -> pb.CheckLedgerResponse:
        report = await in_thread(self.service.check_ledger, current_call().actor)
        response = pb.CheckLedgerResponse(
            balanced=report.balanced,
            accounts_checked=report.accounts_checked,
            transfers_checked=report.transfers_checked,
            total_balance=report.total_balance,
            mismatches=[
                pb.AccountMismatch(account=m.account, stored_balance=m.stored_balance, entries_sum=m.entries_sum)
                for m in report.mismatches
            ],
            unbalanced_transfer_ids=report.unbalanced_transfer_ids,
            negative_accounts=report.negative_accounts,
            lot_problems=report.lot_problems,
        )
        if report.transfer_chain is not None:
            response.transfer_chain.CopyFrom(chain_to_pb(report.transfer_chain))
        if report.audit_chain is not None:
            response.audit_chain.CopyFrom(chain_to_pb(report.audit_chain))
        return response

    async def ListLots(self, request: pb.ListLotsRequest, context: Any) -> pb.ListLotsResponse:
        found = await in_thread(self.service.list_lots, current_call().actor, request.user_id)
        now = self.service.clock()
        return pb.ListLotsResponse(lots=[lot_to_pb(lot, now) for lot in found])

    async def Hold(self, request: pb.HoldRequest, context: Any) -> pb.HoldResponse:
        call = current_call()
        cmd = lots.PlaceHold(
            user_id=request.user_id,
            amount=request.amount,
            reference=request.reference,
            description=request.description,
            timeout=timedelta(seconds=request.timeout_seconds or lots.DEFAULT_HOLD_SECONDS),
        )

        def encode(result: HoldResult) -> bytes:
            return _serialize(
                pb.HoldResponse(hold=hold_to_pb(result.hold, result.draws), balance=result.balance, held=result.held)
            )

        outcome = await in_thread(self.holds.place, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.HoldResponse.FromString(outcome.response)

    async def CaptureHold(self, request: pb.CaptureHoldRequest, context: Any) -> pb.CaptureHoldResponse:
        call = current_call()
        cmd = lots.CaptureHold(request.hold_id, request.amount if request.HasField("amount") else None)

        def encode(result: HoldResult) -> bytes:
            return _serialize(
                pb.CaptureHoldResponse(
                    hold=hold_to_pb(result.hold, result.draws), balance=result.balance, held=result.held
                )
            )

        outcome = await in_thread(self.holds.capture, call.actor, cmd, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.CaptureHoldResponse.FromString(outcome.response)

    async def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: Any) -> pb.ReleaseHoldResponse:
        call = current_call()

        def encode(result: HoldResult) -> bytes:
            return _serialize(
                pb.ReleaseHoldResponse(
                    hold=hold_to_pb(result.hold, result.draws), balance=result.balance, held=result.held
                )
            )

        outcome = await in_thread(self.holds.release, call.actor, request.hold_id, call.idempotent(request), encode)
        call.mark_replayed(outcome.replayed)
        return pb.ReleaseHoldResponse.FromString(outcome.response)

    async def GetHold(self, request: pb.GetHoldRequest, context: Any) -> pb.GetHoldResponse:
        hold, draws = await in_thread(self.holds.get, current_call().actor, request.hold_id)
        return pb.GetHoldResponse(hold=hold_to_pb(hold, draws))

    async def GetLiability(self, request: pb.GetLiabilityRequest, context: Any) -> pb.GetLiabilityResponse:
        liability = await in_thread(self.service.liability, current_call().actor, request.breakage_months)
        return pb.GetLiabilityResponse(
            categories=[
                pb.CategoryLiability(
                    category=CATEGORY_TO_PB[c.category], credits=c.credits, held=c.held, value=_money(c.value_minor)
                )
                for c in liability.by_category
            ],
            breakage=[
                pb.MonthlyBreakage(
                    month=b.month, category=CATEGORY_TO_PB[b.category], credits=b.credits, value=_money(b.value_minor)
                )
                for b in liability.breakage
            ],
            deferred_revenue=_money(liability.deferred_revenue_minor),
        )

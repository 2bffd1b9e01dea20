"""Reconciliation's adapters: gathering one range's records from the three sources, then the rules.

- Payments: its own database (this code runs as Payments, in the service or in
  `python -m payments_svc reconcile`, with Payments' settings).
- Credits: its gRPC API (`ListTransfers` page by page, `GetTransfer` by reference),
  with Payments' service credential.
- Stripe: the API, `list` with auto-paging (PaymentIntents and Refunds), and
  `retrieve` for the few objects created outside the range. Stripe's events are
  never read (Stripe keeps them 30 days): Payments' own inbox stands for them.

The range selects payments, grants and Stripe PaymentIntents created in
[since, until); reversals and refunds are read from `since` on (a refund comes
after its payment, possibly long after). Whatever one side names that the
other did not list (a grant for a payment created just before `since`, an
intent created a second later than its payment) is looked up by id, so a
boundary never shows as a difference.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import stripe
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine

from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from payments_svc import domain
from payments_svc.reconciliation import (
    Discrepancy,
    Findings,
    LedgerTransfer,
    RefundRecord,
    RejectedEvent,
    Sources,
    StripeIntent,
    StripeRefund,
    compare,
)
from payments_svc.repository import PaymentsRepository
from svckit.db import run_transaction
from svckit.errors import Unavailable, Violations
from svckit.service_client import ServiceTarget, call_metadata, channel_options
from svckit.stripe_client import ProviderRejected, call_stripe

log = logging.getLogger(__name__)
PAGE_SIZE = 200
STRIPE_PAGE_SIZE = 100
# Transfers and refunds that follow a payment are read from a little before `since`: clocks differ.
CLOCK_SLACK = timedelta(minutes=5)
# Stripe's timestamps are whole seconds.
STRIPE_SLACK = timedelta(seconds=2)

# The range a reconciliation accepts: wide, but far from datetime's limits (the slack above is subtracted).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

Progress = Callable[[str, int], None]


def no_progress(phase: str, rows: int) -> None:
    pass


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    stripe: bool
    findings: Findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "stripe": self.stripe,
            "checked": self.findings.checked,
            "in_flight": self.findings.in_flight,
            "discrepancies": [d.as_dict() for d in self.findings.discrepancies],
        }


def check_window(since: datetime | None, until: datetime | None, *, max_days: int | None = None) -> None:
    v = Violations()
    v.check_range(since, until, required=True)
    if since is not None and since < EARLIEST:
        v.add("since", f"not before {EARLIEST.date().isoformat()}")
    if until is not None and until > LATEST:
        v.add("until", f"not after {LATEST.date().isoformat()}")
    if since and until and max_days is not None and until - since > timedelta(days=max_days):
        v.add("until", f"a range is at most {max_days} days")
    v.raise_if_any()


# --- Credits ----------------------------------------------------------------------------------

TransferKind = credits_pb2.TransferKind.ValueType
KINDS = {credits_pb2.TRANSFER_KIND_GRANT: "grant", credits_pb2.TRANSFER_KIND_REVERSAL: "reversal"}


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _transfer(t: credits_pb2.Transfer) -> LedgerTransfer:
    return LedgerTransfer(
        transfer_id=t.id,
        kind=KINDS.get(t.kind, "other"),
        user_id=t.user_id,
        amount=t.amount,
        reference=t.reference,
        created_at=t.create_time.ToDatetime(tzinfo=UTC),
    )


class CreditsLedger:
    """Credits' transfers over gRPC, as this service (Payments' credential)."""

    def __init__(self, target: ServiceTarget) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target.address, options=channel_options())
        self.stub = credits_pb2_grpc.CreditsServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(
                request,
                metadata=call_metadata(self.target.token, "payments"),
                timeout=self.target.deadline_seconds,
            )
        except grpc.RpcError as error:
            code = error.code()
            if code is grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(f"Credits did not answer the reconciliation ({code.name})") from error

    def pages(
        self, kind: credits_pb2.TransferKind.ValueType, since: datetime, until: datetime | None
    ) -> Iterator[list[LedgerTransfer]]:
        token = ""
        while True:
            request = credits_pb2.ListTransfersRequest(
                kind=kind, since=_stamp(since), page_size=PAGE_SIZE, page_token=token
            )
            if until is not None:
                request.until.CopyFrom(_stamp(until))
            response = self._call(self.stub.ListTransfers, request)
            yield [_transfer(t) for t in response.transfers]
            token = response.next_page_token
            if not token:
                return

    def by_reference(self, reference: str) -> LedgerTransfer | None:
        found = self._call(self.stub.GetTransfer, credits_pb2.GetTransferRequest(reference=reference))
        return None if found is None else _transfer(found.transfer)


# --- Stripe -----------------------------------------------------------------------------------


def _intent(obj: Any) -> StripeIntent:
    metadata = obj.metadata.to_dict() if obj.metadata is not None else {}
    payment_id = metadata.get("payment_id")
    return StripeIntent(
        id=str(obj.id),
        status=str(obj.status),
        amount_minor=int(obj.amount),
        currency=str(obj.currency),
        payment_id=str(payment_id) if payment_id else None,
    )


def _refund(obj: Any) -> StripeRefund:
    intent = obj.payment_intent
    return StripeRefund(
        id=str(obj.id),
        payment_intent_id=str(intent if isinstance(intent, str) or intent is None else intent.id),
        amount_minor=int(obj.amount),
        currency=str(obj.currency),
        status=str(obj.status),
    )


class StripeRecords:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def intents(self, since: datetime, until: datetime) -> Iterator[StripeIntent]:
        params: stripe.params.PaymentIntentListParams = {
            "created": {"gte": int((since - STRIPE_SLACK).timestamp()), "lt": int((until + STRIPE_SLACK).timestamp())},
            "limit": STRIPE_PAGE_SIZE,
        }
        listing = call_stripe(lambda: self.client.v1.payment_intents.list(params=params))
        yield from (_intent(i) for i in _paged(listing))

    def refunds(self, since: datetime) -> Iterator[StripeRefund]:
        params: stripe.params.RefundListParams = {
            "created": {"gte": int((since - CLOCK_SLACK).timestamp())},
            "limit": STRIPE_PAGE_SIZE,
        }
        listing = call_stripe(lambda: self.client.v1.refunds.list(params=params))
        yield from (_refund(r) for r in _paged(listing))

    def intent(self, intent_id: str) -> StripeIntent | None:
        found = _missing_as_none(lambda: self.client.v1.payment_intents.retrieve(intent_id))
        return None if found is None else _intent(found)

    def refund(self, refund_id: str) -> StripeRefund | None:
        found = _missing_as_none(lambda: self.client.v1.refunds.retrieve(refund_id))
        return None if found is None else _refund(found)


def _paged(listing: Any) -> Iterator[Any]:
    """Every object of a Stripe list, the next pages fetched as needed (auto-paging), errors as ours."""
    items = iter(listing.auto_paging_iter())
    while True:
        item = call_stripe(lambda: next(items, None))
        if item is None:
            return
        yield item


def _missing_as_none(fetch: Callable[[], Any]) -> Any:
    try:
        return call_stripe(fetch)
    except ProviderRejected as error:
        cause = error.__cause__
        if isinstance(cause, stripe.InvalidRequestError) and cause.http_status == 404:
            return None
        raise


# --- gathering --------------------------------------------------------------------------------


def reconcile(
    engine: Engine,
    ledger: CreditsLedger,
    stripe_records: StripeRecords | None,
    since: datetime,
    until: datetime,
    progress: Progress = no_progress,
) -> Report:
    """Gather [since, until) from Payments, Credits and (unless None) Stripe; compare; the report."""
    payments = _payments(engine, since, until, progress)
    # Read after the payments and before the ledger: a grant or reversal owed by what was read is either
    # still in the outbox now (in flight, not judged) or already in the ledger when it is read next.
    pending = run_transaction(engine, lambda conn: PaymentsRepository(conn).aggregates_pending(), read_only=True)
    transfers = _ledger(ledger, since, until, progress)
    intents: dict[str, StripeIntent] | None = None
    stripe_refunds: dict[str, StripeRefund] | None = None
    if stripe_records is not None:
        intents = {}
        for count, intent in enumerate(stripe_records.intents(since, until), 1):
            intents[intent.id] = intent
            if count % STRIPE_PAGE_SIZE == 0:
                progress("stripe payment intents", count)
        progress("stripe payment intents", len(intents))
        stripe_refunds = {}
        for count, refund in enumerate(stripe_records.refunds(since), 1):
            stripe_refunds[refund.id] = refund
            if count % STRIPE_PAGE_SIZE == 0:
                progress("stripe refunds", count)
        progress("stripe refunds", len(stripe_refunds))

    # Whatever one side names and the other did not list: looked up by id.
    named = {t.payment_id for t in transfers.values() if t.payment_id} | {
        i.payment_id for i in (intents or {}).values() if i.payment_id
    }
    intent_ids = {i.id for i in (intents or {}).values() if i.payment_id}
    known_intents = {p.stripe_payment_intent_id for p in payments.values()}
    missing_ids = sorted(p for p in named if p and p not in payments)
    missing_intents = sorted(i for i in intent_ids if i not in known_intents)
    if missing_ids or missing_intents:
        extra = run_transaction(
            engine,
            lambda conn: PaymentsRepository(conn).payments_matching(ids=missing_ids, intent_ids=missing_intents),
            read_only=True,
        )
        payments.update({p.id: p for p in extra})
        progress("payments outside the range, looked up", len(extra))
    grants = {t.payment_id for t in transfers.values() if t.kind == "grant"}
    for payment in sorted(payments.values(), key=lambda p: p.id):
        if payment.status in domain.PAID and payment.id not in grants:
            found = ledger.by_reference(domain.grant_reference(payment.id))
            if found is not None:
                transfers[found.transfer_id] = found

    def read_rest(conn: Any) -> tuple[list[dict[str, Any]], list[Any], set[str]]:
        repo = PaymentsRepository(conn)
        return (
            repo.refunds_for(sorted(payments), since - CLOCK_SLACK, until),
            repo.rejected_events(since, until),
            repo.aggregates_pending(),
        )

    refund_rows, rejected, pending_now = run_transaction(engine, read_rest, read_only=True)
    pending |= pending_now  # the payments looked up by id were read after the ledger
    refunds = [RefundRecord(**row) for row in refund_rows]
    progress("payments refunds", len(refunds))
    if stripe_records is not None:
        assert intents is not None
        assert stripe_refunds is not None
        for payment in payments.values():
            intent_id = payment.stripe_payment_intent_id
            if payment.status in domain.PAID and intent_id and intent_id not in intents:
                found_intent = stripe_records.intent(intent_id)
                if found_intent is not None:
                    intents[intent_id] = found_intent
        for record in refunds:
            if record.stripe_refund_id not in stripe_refunds:
                found_refund = stripe_records.refund(record.stripe_refund_id)
                if found_refund is not None:
                    stripe_refunds[found_refund.id] = found_refund
    sources = Sources(
        payments=payments.values(),
        refunds=refunds,
        transfers=transfers.values(),
        rejected_events=[RejectedEvent(e.event_id, e.type, e.detail) for e in rejected],
        in_flight=frozenset(pending),
        stripe_intents=None if intents is None else intents.values(),
        stripe_refunds=None if stripe_refunds is None else stripe_refunds.values(),
    )
    findings = compare(sources)
    progress("discrepancies", len(findings.discrepancies))
    return Report(since, until, stripe_records is not None, findings)


def _payments(engine: Engine, since: datetime, until: datetime, progress: Progress) -> dict[str, domain.Payment]:
    payments: dict[str, domain.Payment] = {}
    after: tuple[datetime, str] | None = None

    def read(position: tuple[datetime, str] | None) -> list[domain.Payment]:
        return run_transaction(
            engine,
            lambda conn: PaymentsRepository(conn).created_between(since, until, after=position, limit=PAGE_SIZE),
            read_only=True,
        )

    while True:
        page = read(after)
        payments.update({p.id: p for p in page})
        progress("payments", len(payments))
        if len(page) < PAGE_SIZE:
            return payments
        after = (page[-1].created_at, page[-1].id)


def _ledger(ledger: CreditsLedger, since: datetime, until: datetime, progress: Progress) -> dict[str, LedgerTransfer]:
    transfers: dict[str, LedgerTransfer] = {}
    for kind, name, end in (
        (credits_pb2.TRANSFER_KIND_GRANT, "credits grants", until + CLOCK_SLACK),
        # Refunds come long after their payment: every reversal from `since` on.
        (credits_pb2.TRANSFER_KIND_REVERSAL, "credits reversals", None),
    ):
        count = 0
        for page in ledger.pages(kind, since - CLOCK_SLACK, end):
            count += len(page)
            transfers.update({t.transfer_id: t for t in page if t.payment_id})
            progress(name, count)
    return transfers


class Reconciler:
    """What the Reconcile RPC and `python -m payments_svc reconcile` run: one report per call."""

    def __init__(self, engine: Engine, credits: ServiceTarget, stripe_client: stripe.StripeClient) -> None:
        self.engine = engine
        self.credits = credits
        self.stripe_client = stripe_client

    def run(self, since: datetime, until: datetime, *, use_stripe: bool, progress: Progress = no_progress) -> Report:
        """Differences found twice in a row: one that a second look no longer finds was still moving.

        The three sources cannot be read at one instant: a refund recorded just after Payments was
        read, or a reversal committed just after the ledger was read, shows as a difference that
        is gone a moment later. Only what the second pass finds again is reported.
        """
        ledger = CreditsLedger(self.credits)
        try:
            stripe_records = StripeRecords(self.stripe_client) if use_stripe else None
            first = reconcile(self.engine, ledger, stripe_records, since, until, progress)
            if not first.findings.discrepancies:
                return first
            progress("confirming differences", len(first.findings.discrepancies))
            second = reconcile(self.engine, ledger, stripe_records, since, until, progress)
        finally:
            ledger.close()
        seen = {_identity(d) for d in first.findings.discrepancies}
        confirmed = [d for d in second.findings.discrepancies if _identity(d) in seen]
        return dataclasses.replace(second, findings=dataclasses.replace(second.findings, discrepancies=confirmed))


def _identity(found: Discrepancy) -> tuple[str, tuple[tuple[str, str], ...]]:
    return found.kind.value, tuple(sorted(found.ids.items()))

"""The Payments use cases.

Calls that create something at Stripe run in two steps around the Stripe call
(no Stripe call ever happens inside an open transaction): claim the
idempotency key, call Stripe with a key derived from it, then record the result
and the response in one transaction. Stripe events run in one transaction:
idempotency record (the event id), inbox entry, payment change, and the outbox
messages that ask Credits to grant or take back credits.

Admins (and services) read revenue, transactions, the event inbox and the
audit log, and may re-drive an event that was rejected or ignored: the stored
payload goes through the same path as a delivery, under the admin's key, and
is audited in its transaction. An admin's refund is audited with its record.
"""

from __future__ import annotations

import functools
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from payments_svc import domain
from payments_svc.credits_relay import GRANT, REVERSE
from payments_svc.models import AUDIT_CHAIN, audit_records
from payments_svc.reconciler import Reconciler, Report, check_window
from payments_svc.repository import PaymentsRepository
from payments_svc.stripe_events import EventFacts, Origin, facts_from_event, origin_from_metadata
from payments_svc.stripe_provider import CheckoutRequest, CreatedIntent, CreatedRefund, CreatedSession, PaymentProvider
from svckit.actors import ID_PATTERN, Actor
from svckit.audit import AuditFilter, AuditLog, AuditPage, is_audited, list_audit
from svckit.audit_chain import check_audit_chain_as
from svckit.chain import ChainReport
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import FieldViolation, InvalidArgument, Unimplemented
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome
from svckit.inbox import (
    IGNORED,
    PROCESSED,
    REDRIVABLE,
    REJECTED,
    EventNotFound,
    EventNotRedrivable,
    EventsPage,
    Inbox,
    MalformedEvent,
    StoredEvent,
    check_event_call,
    list_events,
    parse_event,
)
from svckit.outbox import Outbox
from svckit.pagination import clamp_page_size, take_page
from svckit.stripe_client import derived_key

log = logging.getLogger(__name__)
# How long a create call may stay between its two steps before a retry takes it over.
STALE_AFTER = timedelta(seconds=60)
# The longest range one Reconcile call compares (the CLI has no limit).
MAX_RECONCILE_DAYS = 31


@dataclass(frozen=True)
class CheckoutCreated:
    payment: domain.Payment
    url: str


@dataclass(frozen=True)
class IntentCreated:
    payment: domain.Payment
    client_secret: str


@dataclass(frozen=True)
class RefundCreated:
    payment: domain.Payment
    stripe_refund_id: str
    amount_minor: int


@dataclass(frozen=True)
class PaymentsPage:
    payments: list[domain.Payment]
    next_before: tuple[datetime, str] | None


@dataclass(frozen=True)
class TransactionsPage:
    transactions: list[domain.Transaction]
    next_after: domain.TransactionPosition | None


def _same(response: bytes) -> bytes:
    return response


class PaymentsService:
    def __init__(
        self,
        engine: Engine,
        *,
        idempotency: IdempotencyStore,
        inbox: Inbox,
        outbox: Outbox,
        provider: PaymentProvider,
        catalog: domain.Catalog,
        outbox_written: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditLog | None = None,
        reconciler: Reconciler | None = None,
    ) -> None:
        self.engine = engine
        self.idempotency = idempotency
        self.inbox = inbox
        self.outbox = outbox
        self.provider = provider
        self.catalog = catalog
        self.outbox_written = outbox_written
        self.clock = clock
        self.audit = audit or AuditLog(audit_records)
        self.reconciler = reconciler

    # --- reads ------------------------------------------------------------------------

    def get_payment(self, actor: Actor, payment_id: str) -> domain.Payment:
        found = run_transaction(self.engine, lambda conn: PaymentsRepository(conn).get(payment_id), read_only=True)
        if found is None:
            raise domain.PaymentNotFound(payment_id)
        actor.require_access_to_user(found.user_id)
        return found

    def list_payments(
        self,
        actor: Actor,
        *,
        user_id: str,
        status: domain.PaymentStatus | None,
        page_size: int,
        before: tuple[datetime, str] | None,
    ) -> PaymentsPage:
        if user_id:
            actor.require_access_to_user(user_id)
        else:
            actor.require_privileged("list everyone's payments")
        limit = clamp_page_size(page_size)
        rows = run_transaction(
            self.engine,
            lambda conn: PaymentsRepository(conn).list(
                user_id=user_id or None, status=status, before=before, limit=limit + 1
            ),
            read_only=True,
        )
        page, last = take_page(rows, limit)
        return PaymentsPage(page, (last.created_at, last.id) if last else None)

    # --- admin reads ------------------------------------------------------------------

    def revenue_summary(self, actor: Actor, since: datetime | None, until: datetime | None) -> domain.RevenueSummary:
        """Paid payments and refunds created in [since, until), per currency and per UTC day."""
        actor.require_privileged("read revenue")
        domain.check_range(since, until, required=True)
        assert since is not None
        assert until is not None
        paid, refunded = run_transaction(
            self.engine,
            lambda conn: PaymentsRepository(conn).revenue_by_day(since, until),
            read_only=True,
            snapshot=True,
        )
        return domain.summarize_revenue(paid, refunded)

    def list_transactions(
        self,
        actor: Actor,
        *,
        user_id: str,
        kind: domain.TransactionKind | None,
        since: datetime | None,
        until: datetime | None,
        page_size: int,
        after: domain.TransactionPosition | None,
    ) -> TransactionsPage:
        """Payments and refunds in one list, newest first: `limit + 1` of each, merged."""
        actor.require_privileged("list transactions")
        if user_id and not ID_PATTERN.match(user_id):
            raise InvalidArgument.from_violations(
                [FieldViolation("user_id", "1 to 128 characters, letters, digits and _-.:@")]
            )
        domain.check_range(since, until, required=False)
        limit = clamp_page_size(page_size)
        kinds = list(domain.TransactionKind) if kind is None else [kind]

        def read(conn: Connection) -> list[list[domain.Transaction]]:
            repo = PaymentsRepository(conn)
            return [
                repo.transactions(k, user_id=user_id or None, since=since, until=until, after=after, limit=limit + 1)
                for k in kinds
            ]

        streams = run_transaction(self.engine, read, read_only=True, snapshot=True)
        merged = list(heapq.merge(*streams, key=lambda t: (t.created_at, t.kind.value), reverse=True))
        page, last = take_page(merged, limit)
        return TransactionsPage(page, domain.TransactionPosition.of(last) if last else None)

    def list_stripe_events(
        self, actor: Actor, *, status: str, type_: str, page_size: int, before: tuple[datetime, str] | None
    ) -> EventsPage:
        return list_events(
            self.engine, self.inbox, actor, status=status, type_=type_, page_size=page_size, before=before
        )

    def check_audit_chain(self, actor: Actor) -> ChainReport:
        """The audit log's hash chain, verified (admins and services)."""
        return check_audit_chain_as(actor, self.engine, AUDIT_CHAIN)

    def list_audit_records(
        self, actor: Actor, where: AuditFilter, *, page_size: int, before: tuple[datetime, str] | None
    ) -> AuditPage:
        return list_audit(self.engine, self.audit, actor, where, page_size=page_size, before=before)

    def reconcile(self, actor: Actor, since: datetime | None, until: datetime | None, *, use_stripe: bool) -> Report:
        """Payments against the ledger and Stripe for payments created in [since, until), at most 31 days."""
        actor.require_privileged("reconcile payments")
        check_window(since, until, max_days=MAX_RECONCILE_DAYS)
        assert since is not None
        assert until is not None
        if self.reconciler is None:
            raise Unimplemented("reconciliation is not configured in this process")
        report = self.reconciler.run(since, until, use_stripe=use_stripe)
        log.info(
            "reconciliation %s..%s: %d discrepancies",
            since.isoformat(),
            until.isoformat(),
            len(report.findings.discrepancies),
        )
        return report

    # --- buying -----------------------------------------------------------------------

    def create_checkout_session(
        self, actor: Actor, cmd: domain.BuyPackage, call: IdempotentCall, encode: Callable[[CheckoutCreated], bytes]
    ) -> Outcome:
        request = self._buying(actor, cmd, call, checkout=True)

        def record(conn: Connection, session: CreatedSession) -> bytes:
            flow = domain.PaymentFlow.CHECKOUT
            payment = self._record_new(conn, request(), flow, session.id, session.payment_intent_id)
            return encode(CheckoutCreated(payment, session.url))

        return self.idempotency.around_external_call(
            self.engine,
            call,
            stale_after=STALE_AFTER,
            external=lambda: self.provider.create_checkout_session(
                request(), idempotency_key=derived_key("checkout", call)
            ),
            record=record,
        )

    def create_payment_intent(
        self, actor: Actor, cmd: domain.BuyPackage, call: IdempotentCall, encode: Callable[[IntentCreated], bytes]
    ) -> Outcome:
        request = self._buying(actor, cmd, call, checkout=False)

        def record(conn: Connection, intent: CreatedIntent) -> bytes:
            payment = self._record_new(conn, request(), domain.PaymentFlow.PAYMENT_INTENT, None, intent.id)
            return encode(IntentCreated(payment, intent.client_secret))

        return self.idempotency.around_external_call(
            self.engine,
            call,
            stale_after=STALE_AFTER,
            external=lambda: self.provider.create_payment_intent(
                request(), idempotency_key=derived_key("intent", call)
            ),
            record=record,
        )

    def _buying(
        self, actor: Actor, cmd: domain.BuyPackage, call: IdempotentCall, *, checkout: bool
    ) -> Callable[[], CheckoutRequest]:
        """Check the purchase; what to ask Stripe for, built (customer included) once the key is held."""
        cmd.validate(checkout=checkout)
        actor.require_access_to_user(cmd.user_id)
        package, currency, amount = self.catalog.price(cmd.package_id, cmd.currency)
        return functools.cache(lambda: self._request(cmd, call, package, currency, amount))

    def _request(
        self,
        cmd: domain.BuyPackage,
        call: IdempotentCall,
        package: domain.CreditPackage,
        currency: str,
        amount: int,
    ) -> CheckoutRequest:
        return CheckoutRequest(
            customer_id=self._customer_for(cmd.user_id),
            user_id=cmd.user_id,
            payment_id=domain.payment_id_for(call.caller, call.key),
            package_id=package.package_id,
            package_name=package.name,
            credits=package.credits,
            currency=currency,
            amount_minor=amount,
            success_url=cmd.success_url,
            cancel_url=cmd.cancel_url,
        )

    def ensure_customer(self, actor: Actor, user_id: str) -> str:
        """The user's Stripe customer, for a sibling service that bills the same customer."""
        actor.require_privileged("ask for a Stripe customer")
        if not ID_PATTERN.match(user_id):
            raise InvalidArgument.from_violations(
                [FieldViolation("user_id", "required: 1 to 128 characters, letters, digits and _-.:@")]
            )
        return self._customer_for(user_id)

    def _customer_for(self, user_id: str) -> str:
        """The user's Stripe customer, created at most once.

        Concurrent first purchases all ask Stripe with the same idempotency key
        and so receive the same customer; the first to record it wins.
        """
        known = run_transaction(self.engine, lambda conn: PaymentsRepository(conn).customer(user_id), read_only=True)
        if known is not None:
            return known
        created = self.provider.create_customer(user_id, idempotency_key=f"customer-{user_id}")
        return run_transaction(
            self.engine, lambda conn: PaymentsRepository(conn).add_customer(user_id, created, self.clock())
        )

    def _record_new(
        self,
        conn: Connection,
        request: CheckoutRequest,
        flow: domain.PaymentFlow,
        session_id: str | None,
        intent_id: str | None,
    ) -> domain.Payment:
        repo = PaymentsRepository(conn)
        payment = domain.Payment.new(
            id=request.payment_id,
            user_id=request.user_id,
            package_id=request.package_id,
            credits=request.credits,
            amount_minor=request.amount_minor,
            currency=request.currency,
            flow=flow,
            source="api",
            at=self.clock(),
            stripe_checkout_session_id=session_id,
            stripe_payment_intent_id=intent_id,
        )
        if not repo.add_payment(payment):
            # A Stripe event recorded the payment first (from the metadata we sent): keep that one.
            existing = repo.get(payment.id, lock=True)
            assert existing is not None
            return existing
        return payment

    # --- refunds ----------------------------------------------------------------------

    def refund(
        self, actor: Actor, cmd: domain.RefundPayment, call: IdempotentCall, encode: Callable[[RefundCreated], bytes]
    ) -> Outcome:
        cmd.validate()
        actor.require_privileged("refund a payment")
        payment = self.get_payment(actor, cmd.payment_id)

        def refund_at_stripe() -> CreatedRefund:
            # Checked once the key is held: a replay of a completed refund must not be refused.
            amount = cmd.amount_for(payment)
            if payment.stripe_payment_intent_id is None:
                raise domain.PaymentNotRefundable(f"payment {payment.id} has no Stripe payment intent yet")
            return self.provider.refund(
                payment.stripe_payment_intent_id, amount, cmd.reason, idempotency_key=derived_key("refund", call)
            )

        def record(conn: Connection, refund: CreatedRefund) -> bytes:
            repo, now = PaymentsRepository(conn), self.clock()
            recorded = repo.add_refund(
                stripe_refund_id=refund.id,
                payment_id=payment.id,
                amount_minor=refund.amount_minor,
                currency=payment.currency,
                status=refund.status,
                reason=cmd.reason,
                actor=str(actor),
                now=now,
            )
            # Once per refund: a retry that records the same Stripe refund again is not a second action.
            if recorded and is_audited(actor):
                self.audit.record(
                    conn,
                    actor=actor,
                    action="payments.refund",
                    target=f"payment:{payment.id}",
                    detail=(
                        f"refunded {refund.amount_minor} {payment.currency} ({refund.id}); "
                        f"reason: {cmd.reason or 'none given'}"
                    ),
                )
            report = domain.Reported(charge_id=refund.charge_id, amount_refunded_minor=refund.charge_amount_refunded)
            locked = repo.get(payment.id, lock=True, history=False)
            assert locked is not None
            self._apply(conn, locked, report, source="api")
            current = repo.get(payment.id)
            assert current is not None
            return encode(RefundCreated(current, refund.id, refund.amount_minor))

        outcome = self.idempotency.around_external_call(
            self.engine, call, stale_after=STALE_AFTER, external=refund_at_stripe, record=record
        )
        self.outbox_written()
        return outcome

    # --- Stripe events ----------------------------------------------------------------

    def handle_event(
        self,
        actor: Actor,
        *,
        event_id: str,
        event_type: str,
        payload: bytes,
        call: IdempotentCall,
        encode: Callable[[bool], bytes],
    ) -> Outcome:
        """A delivery from Stripe (through the webhook intake), keyed by the event id."""
        check_event_call(actor, call, event_id)
        text = payload.decode("utf-8", errors="replace")
        return self._apply_event(event_id, event_type, text, call, lambda conn, handled: encode(handled), redrive=False)

    def redrive_event(
        self, actor: Actor, event_id: str, call: IdempotentCall, encode: Callable[[StoredEvent], bytes]
    ) -> Outcome:
        """Apply a rejected or ignored event again from its stored payload, under the admin's key; audited.

        The effect stays exactly once: a payment's credits are owed only when it
        first becomes paid, whichever event (or re-drive) reveals it.
        """
        actor.require_privileged("re-drive Stripe events")
        if not event_id:
            raise InvalidArgument.from_violations([FieldViolation("event_id", "required")])
        stored = run_transaction(self.engine, lambda conn: self.inbox.get(conn, event_id), read_only=True)
        if stored is None:
            raise EventNotFound(event_id)

        def finish(conn: Connection, handled: bool) -> bytes:
            event = self.inbox.get(conn, event_id)
            assert event is not None
            self.audit.record(
                conn,
                actor=actor,
                action="webhooks.redrive",
                target=f"event:{event_id}",
                detail=f"{event.type} re-driven: {stored.status} -> {event.status} ({event.detail})",
            )
            return encode(event)

        if stored.status not in REDRIVABLE:

            def refuse(conn: Connection) -> bytes:
                raise EventNotRedrivable(event_id, stored.status)

            # Refused, unless this is the retry of a re-drive that made it processed: that one replays.
            return self.idempotency.execute_once(self.engine, call, refuse, _same)
        return self._apply_event(event_id, stored.type, stored.payload, call, finish, redrive=True)

    def _apply_event(
        self,
        event_id: str,
        event_type: str,
        text: str,
        call: IdempotentCall,
        finish: Callable[[Connection, bool], bytes],
        *,
        redrive: bool,
    ) -> Outcome:
        """One event applied in one transaction: the inbox entry, the payment change, the outbox messages.

        `finish` answers, in the same transaction, once the inbox says what became of the event.
        A `redrive` rewrites the inbox entry, which must still be re-drivable when the transaction holds it.
        """

        def guard(conn: Connection) -> None:
            if redrive:
                held = PaymentsRepository(conn).locked_event(event_id)
                if held is None:
                    raise EventNotFound(event_id)
                if held.status not in REDRIVABLE:
                    raise EventNotRedrivable(event_id, held.status)

        def outcome(conn: Connection, status: str, detail: str) -> None:
            self.inbox.write(
                conn, event_id=event_id, type_=event_type, payload=text, status=status, detail=detail, redrive=redrive
            )

        def record_only(status: str, detail: str) -> Outcome:
            def effect(conn: Connection) -> bytes:
                guard(conn)
                outcome(conn, status, detail)
                return finish(conn, False)

            return self.idempotency.execute_once(self.engine, call, effect, _same)

        try:
            facts = facts_from_event(event_type, parse_event(text, event_id, event_type))
        except MalformedEvent as error:
            return record_only(REJECTED, str(error))
        if facts is None:
            return record_only(IGNORED, "not an event this service acts on")
        facts = self._with_origin(facts)

        def effect(conn: Connection) -> bytes:
            guard(conn)
            repo = PaymentsRepository(conn)
            payment = repo.find(
                payment_id=facts.payment_id,
                checkout_session_id=facts.checkout_session_id,
                payment_intent_id=facts.payment_intent_id,
            )
            unrecorded = payment is None and facts.origin is not None
            if unrecorded:
                assert facts.origin is not None
                payment = self._from_origin(facts.origin, event_id)
            if payment is None:
                outcome(conn, IGNORED, "no payment of this service")
                return finish(conn, False)
            payment = self._apply(conn, payment, facts.report, source=event_id, unrecorded=unrecorded)
            outcome(conn, PROCESSED, f"payment {payment.id}")
            return finish(conn, True)

        result = self.idempotency.execute_once(self.engine, call, effect, _same)
        if not result.replayed:
            self.outbox_written()
        return result

    def _with_origin(self, facts: EventFacts) -> EventFacts:
        """Charge events name only the payment intent; ask Stripe whose it is when we don't know it."""
        if facts.payment_id or facts.origin or not facts.payment_intent_id:
            return facts
        intent_id = facts.payment_intent_id
        if run_transaction(self.engine, lambda conn: PaymentsRepository(conn).knows_intent(intent_id), read_only=True):
            return facts
        metadata, amount, currency = self.provider.payment_intent_metadata(intent_id)
        origin = origin_from_metadata(metadata, amount, currency, domain.PaymentFlow.PAYMENT_INTENT)
        payment_id = origin.payment_id if origin else None
        return EventFacts(payment_id, facts.checkout_session_id, facts.payment_intent_id, facts.report, origin)

    def _from_origin(self, origin: Origin, event_id: str) -> domain.Payment:
        """A payment this service created at Stripe but never recorded (it stopped between the two steps)."""
        package = self.catalog.package(origin.package_id)
        if package is None or package.credits != origin.credits:
            log.warning("event %s names package %s that the catalog does not match", event_id, origin.package_id)
        return domain.Payment.new(
            id=origin.payment_id,
            user_id=origin.user_id,
            package_id=origin.package_id,
            credits=origin.credits,
            amount_minor=origin.amount_minor,
            currency=origin.currency,
            flow=origin.flow,
            source=event_id,
            at=self.clock(),
        )

    def _apply(
        self,
        conn: Connection,
        payment: domain.Payment,
        report: domain.Reported,
        *,
        source: str,
        unrecorded: bool = False,
    ) -> domain.Payment:
        """Fold a report into the locked (or `unrecorded`) payment, write it, and the outbox messages it now owes."""
        repo = PaymentsRepository(conn)
        history_before = len(payment.history)
        effects = domain.apply_report(payment, report, source, self.clock())
        if unrecorded and not repo.add_payment(payment):
            # Recorded meanwhile by a concurrent call: apply to that record instead.
            recorded = repo.get(payment.id, lock=True, history=False)
            assert recorded is not None
            return self._apply(conn, recorded, report, source=source)
        if not unrecorded:
            repo.save(payment, history_before)
        if effects.grant_credits:
            self.outbox.enqueue(
                conn,
                kind=GRANT,
                key=f"grant:{payment.id}",
                aggregate=payment.id,
                payload={
                    "payment_id": payment.id,
                    "user_id": payment.user_id,
                    "credits": payment.credits,
                    "reference": domain.grant_reference(payment.id),
                    "description": f"{payment.credits} credits bought ({payment.package_id})",
                    # What the lot cost, for the credit liability and deferred revenue.
                    "value_minor": payment.amount_minor,
                    "currency": payment.currency,
                },
            )
        if effects.reverse is not None:
            already, up_to = effects.reverse
            self.outbox.enqueue(
                conn,
                kind=REVERSE,
                key=f"reverse:{payment.id}:{up_to}",
                aggregate=payment.id,
                payload={
                    "payment_id": payment.id,
                    "user_id": payment.user_id,
                    "credits": up_to - already,
                    "grant_reference": domain.grant_reference(payment.id),
                    "reference": f"refund:{payment.id}:{up_to}",
                    "reason": f"refund of {payment.amount_refunded_minor} {payment.currency} of payment {payment.id}",
                },
            )
        return payment

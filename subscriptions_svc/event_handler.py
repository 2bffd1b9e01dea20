"""Stripe's events about subscriptions, invoices and subscription checkouts, applied once each.

For each event, in two steps around one Stripe read (never inside a transaction):

1. claim the event id (a redelivered event replays the stored answer);
2. read the subscription the event names from Stripe: its newest state;
3. in one transaction: fold that state in (an older reading never overwrites a
   newer one), record a paid invoice's period grant and the outbox message
   that asks Credits for it (keyed by the invoice: one grant per paid period),
   queue the notice the event calls for, and record the event in the inbox.

An `invoice.paid` for a price the plan sync does not know grants nothing and
is recorded as ignored, so that an admin can re-drive it once the plan sync
has run. A re-drive (`redrive`, admins and services) applies the stored
payload again the same way, under the caller's idempotency key rather than the
event id: only an event whose status is re-drivable (`svckit.inbox.REDRIVABLE`),
checked once the key is held and again under the inbox row's lock; its inbox row
takes the new outcome, and the re-drive is audited (`webhooks.redrive`), in the
transaction that applies it. Effects stay once: a grant is keyed by its invoice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from subscriptions_svc import domain
from subscriptions_svc.models import audit_records
from subscriptions_svc.plans import PlanCatalog
from subscriptions_svc.repository import SubscriptionsRepository
from subscriptions_svc.service import fold
from subscriptions_svc.stripe_events import EventFacts, facts_from_event
from subscriptions_svc.stripe_provider import SubscriptionProvider
from svckit.actors import Actor
from svckit.audit import AuditLog
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import FieldViolation, InvalidArgument
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome
from svckit.inbox import (
    IGNORED,
    PROCESSED,
    REDRIVABLE,
    REJECTED,
    EventNotFound,
    EventNotRedrivable,
    Inbox,
    MalformedEvent,
    StoredEvent,
    check_event_call,
    parse_event,
)
from svckit.outbox import Outbox

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(seconds=60)
GRANT = "credits.grant"
NOTIFY = "email.notify"
REDRIVE_ACTION = "webhooks.redrive"


@dataclass(frozen=True)
class Reading:
    facts: EventFacts | None
    snapshot: domain.Snapshot | None
    read_at: datetime
    status: str = PROCESSED
    detail: str = ""


class StripeEventHandler:
    def __init__(
        self,
        engine: Engine,
        *,
        idempotency: IdempotencyStore,
        inbox: Inbox,
        outbox: Outbox,
        provider: SubscriptionProvider,
        catalog: PlanCatalog,
        outbox_written: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditLog | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit if audit is not None else AuditLog(audit_records)
        self.idempotency = idempotency
        self.inbox = inbox
        self.outbox = outbox
        self.provider = provider
        self.catalog = catalog
        self.outbox_written = outbox_written
        self.clock = clock

    def handle(
        self,
        actor: Actor,
        *,
        event_id: str,
        event_type: str,
        payload: bytes,
        call: IdempotentCall,
        encode: Callable[[bool], bytes],
        redrive: bool = False,
    ) -> Outcome:
        """Apply an event; with `redrive`, one already recorded again, under any idempotency key."""
        if redrive:
            actor.require_privileged("re-drive Stripe events")
        else:
            check_event_call(actor, call, event_id)
        return self._process(
            actor,
            event_id=event_id,
            event_type=event_type,
            text=payload.decode("utf-8", errors="replace"),
            call=call,
            respond=lambda conn, status: encode(status == PROCESSED),
            redrive=redrive,
        )

    def redrive(
        self, actor: Actor, *, event_id: str, call: IdempotentCall, encode: Callable[[StoredEvent], bytes]
    ) -> Outcome:
        """Apply a recorded event again from its stored payload; the response is its rewritten inbox row."""
        actor.require_privileged("re-drive Stripe events")
        if not event_id:
            raise InvalidArgument.from_violations([FieldViolation("event_id", "required")])
        stored = run_transaction(self.engine, lambda conn: self.inbox.get(conn, event_id), read_only=True)
        if stored is None:
            raise EventNotFound(event_id)

        def respond(conn: Connection, status: str) -> bytes:
            rewritten = self.inbox.get(conn, event_id)
            assert rewritten is not None
            return encode(rewritten)

        return self._process(
            actor,
            event_id=event_id,
            event_type=stored.type,
            text=stored.payload,
            call=call,
            respond=respond,
            redrive=True,
        )

    def _process(
        self,
        actor: Actor,
        *,
        event_id: str,
        event_type: str,
        text: str,
        call: IdempotentCall,
        respond: Callable[[Connection, str], bytes],
        redrive: bool,
    ) -> Outcome:
        def read() -> Reading:
            if redrive:
                self._check_redrivable(event_id)
            now = self.clock()
            try:
                facts = facts_from_event(event_type, parse_event(text, event_id, event_type))
            except MalformedEvent as error:
                return Reading(None, None, now, REJECTED, str(error))
            if facts is None:
                return Reading(None, None, now, IGNORED, "not an event this service acts on")
            if facts.stripe_subscription_id is None:
                return Reading(facts, None, now)
            return Reading(facts, self.provider.subscription(facts.stripe_subscription_id), now)

        def record(conn: Connection, reading: Reading) -> bytes:
            before = ""
            if redrive:
                # A concurrent re-drive (or a late delivery) may have applied it since the check.
                before = SubscriptionsRepository(conn).lock_event(event_id) or ""
                if before not in REDRIVABLE:
                    raise EventNotRedrivable(event_id, before or "unknown")
            status, detail = reading.status, reading.detail
            if reading.facts is not None:
                status, detail = self._apply(conn, event_id, reading)
            self.inbox.write(
                conn, event_id=event_id, type_=event_type, payload=text, status=status, detail=detail, redrive=redrive
            )
            if redrive:
                self.audit.record(
                    conn,
                    actor=actor,
                    action=REDRIVE_ACTION,
                    target=f"event:{event_id}",
                    detail=f"{event_type}: {before} -> {status}: {detail}",
                )
            return respond(conn, status)

        outcome = self.idempotency.around_external_call(
            self.engine, call, stale_after=STALE_AFTER, external=read, record=record
        )
        if not outcome.replayed:
            self.outbox_written()
        return outcome

    def _check_redrivable(self, event_id: str) -> None:
        stored = run_transaction(self.engine, lambda conn: self.inbox.get(conn, event_id), read_only=True)
        if stored is None:
            raise EventNotFound(event_id)
        if stored.status not in REDRIVABLE:
            raise EventNotRedrivable(event_id, stored.status)

    def _apply(self, conn: Connection, event_id: str, reading: Reading) -> tuple[str, str]:
        facts, snap = reading.facts, reading.snapshot
        assert facts is not None
        repo, now = SubscriptionsRepository(conn), self.clock()
        sub = self._find(repo, facts, snap)
        if sub is None and snap is not None:
            sub = self._adopt(repo, snap, reading.read_at)
        if sub is None:
            return IGNORED, "no subscription of this service"
        if facts.checkout_expired:
            if sub.awaiting_checkout:
                sub.expire_checkout(now)
                repo.save(sub)
            return PROCESSED, f"subscription {sub.id}: checkout expired"
        if snap is not None:
            fold(repo, sub, snap, reading.read_at, now)
        done = [f"subscription {sub.id} {sub.status.value}"]
        status = PROCESSED
        if facts.paid_invoice is not None:
            repo.add_paid_invoice(facts.paid_invoice, sub.id, now)
            granted, what = self._grant(repo, conn, sub, facts.paid_invoice, snap, now)
            done.append(what)
            if not granted:
                # What the invoice owes is not known yet: an admin re-drives it after the plan sync.
                status = IGNORED
        if facts.notice is not None:
            done.append(self._notify(conn, sub, facts))
        return status, "; ".join(done)

    @staticmethod
    def _find(
        repo: SubscriptionsRepository, facts: EventFacts, snap: domain.Snapshot | None
    ) -> domain.Subscription | None:
        """Our record of what the event is about, locked; linked to its Stripe subscription if it was not yet."""
        sub = None
        if facts.checkout is not None:
            sub = repo.by_checkout_session(facts.checkout.checkout_session_id, lock=True)
            if sub is None and facts.checkout.subscription_id:
                sub = repo.get(facts.checkout.subscription_id, lock=True)
        if sub is None and snap is not None:
            sub = repo.by_stripe_id(snap.stripe_subscription_id, lock=True)
            if sub is None and snap.subscription_id:
                sub = repo.get(snap.subscription_id, lock=True)
        return sub

    def _adopt(
        self, repo: SubscriptionsRepository, snap: domain.Snapshot, read_at: datetime
    ) -> domain.Subscription | None:
        """A subscription made outside this service's API (Stripe's Dashboard): recorded if we know whose it is."""
        user_id = repo.user_of_customer(snap.stripe_customer_id)
        price = repo.price(snap.stripe_price_id)
        if user_id is None or price is None:
            return None
        now = self.clock()
        sub = domain.Subscription(
            id=domain.subscription_id_for("stripe", snap.stripe_subscription_id),
            user_id=user_id,
            plan_id=price.plan_id,
            family=price.family,
            quantity=snap.quantity,
            status=snap.status,
            currency=price.currency,
            interval=price.interval,
            stripe_price_id=price.stripe_price_id,
            stripe_customer_id=snap.stripe_customer_id,
            stripe_subscription_id=snap.stripe_subscription_id,
            created_at=now,
            updated_at=now,
        )
        domain.apply_snapshot(sub, snap, price, read_at, now)
        if not repo.add(sub):
            log.error(
                "Stripe subscription %s of user %s is a second live subscription in family %s: not recorded",
                snap.stripe_subscription_id,
                user_id,
                price.family,
            )
            return None
        return sub

    def _grant(
        self,
        repo: SubscriptionsRepository,
        conn: Connection,
        sub: domain.Subscription,
        invoice: domain.PaidInvoice,
        snap: domain.Snapshot | None,
        now: datetime,
    ) -> tuple[bool, str]:
        """Record what a paid invoice grants; False when its price is unknown (nothing can be decided)."""
        price = repo.price(invoice.stripe_price_id or sub.stripe_price_id)
        if price is None:
            log.error(
                "invoice %s is for price %s, unknown to the plan sync",
                invoice.stripe_invoice_id,
                invoice.stripe_price_id,
            )
            return False, (
                f"invoice {invoice.stripe_invoice_id}: price unknown, no credits (run the plan sync, then re-drive)"
            )
        trial_end = snap.trial_end if snap is not None else sub.trial_end
        due = domain.credits_for(invoice, price, trial_end)
        if due is None:
            return True, f"invoice {invoice.stripe_invoice_id} ({invoice.billing_reason}): no credits"
        if not repo.add_period_grant(invoice=invoice, subscription=sub, grant=due, now=now):
            return True, f"invoice {invoice.stripe_invoice_id}: credits granted before"
        sub.periods_granted += 1
        sub.updated_at = now
        repo.save(sub)
        self.outbox.enqueue(
            conn,
            kind=GRANT,
            key=f"period-grant:{invoice.stripe_invoice_id}",
            aggregate=sub.id,
            payload={
                "user_id": sub.user_id,
                "credits": due.credits,
                "reference": f"invoice:{invoice.stripe_invoice_id}",
                "description": (
                    f"{due.credits} credits for the {price.plan_id} {due.kind} "
                    f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"
                ),
                "subscription_id": sub.id,
                # Period credits of a plan that does not roll them over expire when the period ends.
                "expire_time": None if self._rolls_over(price.plan_id) else invoice.period_end.isoformat(),
                "value_minor": invoice.amount_paid,
                "currency": invoice.currency or sub.currency,
            },
        )
        return True, f"invoice {invoice.stripe_invoice_id}: {due.credits} credits ({due.kind})"

    def _rolls_over(self, plan_id: str) -> bool:
        """Whether the plan keeps unspent period credits; a plan gone from the catalog keeps them."""
        plan = self.catalog.plan(plan_id)
        return plan is None or plan.credits_roll_over

    def _notify(self, conn: Connection, sub: domain.Subscription, facts: EventFacts) -> str:
        notice = facts.notice
        assert notice is not None
        if notice.kind.value == "trial_ending" and sub.trial_end is not None:
            notice = replace(notice, when=sub.trial_end)
        plan = self.catalog.plan(sub.plan_id)
        self.outbox.enqueue(
            conn,
            kind=NOTIFY,
            key=notice.key,
            aggregate=f"notify:{sub.id}",
            payload={
                "kind": notice.kind.value,
                "message_id": notice.key,
                "stripe_customer_id": notice.stripe_customer_id,
                "email": notice.email,
                "plan_name": plan.name if plan else sub.plan_id,
                "when": notice.when.isoformat() if notice.when else None,
                "amount_minor": notice.amount_minor,
                "currency": notice.currency,
                "link": notice.link,
            },
        )
        return f"{notice.kind.value} notice queued"

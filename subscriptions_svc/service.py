"""The Subscriptions use cases a caller asks for: plans, subscribing, changing, cancelling, pausing.

Every change is made at Stripe first, in two steps around the Stripe call (no
Stripe call happens inside an open transaction): claim the idempotency key,
call Stripe with a key derived from it, then fold the subscription Stripe
returned into our record and store the response, in one transaction. Stripe's
events (event_handler.py) keep the record true afterwards.

A user reaches only their own subscriptions: another user's is NOT_FOUND, so
that ids cannot be probed.

A change an admin asks for (`svckit.audit.is_audited`) is audited as
`subscriptions.<change|cancel|reactivate|pause|resume>`, target
`subscription:<id>`, in the transaction that records it: once per
idempotency key, never for a replay. The admin reads (metrics, everyone's
subscriptions, the Stripe events received, the audit log) are for admins and
services only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine

from subscriptions_svc import domain
from subscriptions_svc.customers import CustomerDirectory
from subscriptions_svc.models import AUDIT_CHAIN, audit_records, stripe_events
from subscriptions_svc.plans import Plan, PlanCatalog
from subscriptions_svc.repository import SubscriptionsRepository
from subscriptions_svc.stripe_provider import (
    CheckoutRequest,
    CreatedCheckout,
    CreatedSubscription,
    SubscriptionProvider,
)
from svckit.actors import Actor
from svckit.audit import AuditFilter, AuditLog, AuditPage, is_audited, list_audit
from svckit.audit_chain import check_audit_chain_as
from svckit.chain import ChainReport
from svckit.clock import utc_now
from svckit.db import run_transaction
from svckit.errors import BillingError, FieldViolation, InvalidArgument, Unavailable
from svckit.idempotency import IdempotencyStore, IdempotentCall, Outcome
from svckit.inbox import EventsPage, Inbox, list_events
from svckit.pagination import clamp_page_size, take_page
from svckit.stripe_client import derived_key

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long a call may stay between its two steps before a retry takes it over.
STALE_AFTER = timedelta(seconds=60)
DEFAULT_INTERVAL = "month"


@dataclass(frozen=True)
class CheckoutStarted:
    subscription: domain.Subscription
    checkout_session_id: str
    url: str


@dataclass(frozen=True)
class SubscriptionCreated:
    subscription: domain.Subscription
    client_secret: str


@dataclass(frozen=True)
class PlanOnSale:
    plan: Plan
    prices: list[domain.PriceInfo]


@dataclass(frozen=True)
class SubscriptionsPage:
    subscriptions: list[domain.Subscription]
    next_before: tuple[datetime, str] | None


@dataclass(frozen=True)
class Audited:
    """What an admin's change is audited as: `subscriptions.<action>`, with a short account."""

    action: str
    detail: str = ""


def fold(
    repo: SubscriptionsRepository, sub: domain.Subscription, snap: domain.Snapshot, read_at: datetime, now: datetime
) -> bool:
    """Fold a Stripe reading into a locked record and save it; True if it changed."""
    price = repo.price(snap.stripe_price_id)
    if price is None:
        log.warning("subscription %s is on price %s, which the plan sync does not know", sub.id, snap.stripe_price_id)
    before = sub.status
    changed = domain.apply_snapshot(sub, snap, price, read_at, now)
    if changed:
        if domain.is_unexpected(before, sub.status):
            log.warning("subscription %s went from %s to %s at Stripe", sub.id, before.value, sub.status.value)
        repo.save(sub)
    return changed


class SubscriptionsService:
    def __init__(
        self,
        engine: Engine,
        *,
        idempotency: IdempotencyStore,
        provider: SubscriptionProvider,
        catalog: PlanCatalog,
        customers: CustomerDirectory,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditLog | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.engine = engine
        self.idempotency = idempotency
        self.provider = provider
        self.catalog = catalog
        self.customers = customers
        self.clock = clock
        self.audit = audit if audit is not None else AuditLog(audit_records)
        self.inbox = inbox if inbox is not None else Inbox(stripe_events)

    # --- reads ------------------------------------------------------------------------

    def list_plans(self) -> list[PlanOnSale]:
        """The catalog's plans that have synced prices, with those prices."""
        prices = run_transaction(
            self.engine, lambda conn: SubscriptionsRepository(conn).active_prices(), read_only=True
        )
        on_sale = []
        for plan in self.catalog.plans:
            mine = [p for p in prices if p.plan_id == plan.plan_id and plan.price(p.currency, p.interval)]
            if mine:
                on_sale.append(PlanOnSale(plan, sorted(mine, key=lambda p: (p.currency, p.interval))))
        return on_sale

    def get(self, actor: Actor, subscription_id: str) -> domain.Subscription:
        found = run_transaction(
            self.engine, lambda conn: SubscriptionsRepository(conn).get(subscription_id), read_only=True
        )
        return self._visible(actor, subscription_id, found)

    def list(
        self,
        actor: Actor,
        *,
        user_id: str,
        page_size: int,
        before: tuple[datetime, str] | None,
        status: domain.Status | None = None,
    ) -> SubscriptionsPage:
        """A user's subscriptions, or everyone's (empty `user_id`: admins and services), newest first."""
        if user_id:
            actor.require_access_to_user(user_id)
        else:
            actor.require_privileged("list everyone's subscriptions")
        limit = clamp_page_size(page_size)
        rows = run_transaction(
            self.engine,
            lambda conn: SubscriptionsRepository(conn).list_subscriptions(
                user_id=user_id or None, status=status, before=before, limit=limit + 1
            ),
            read_only=True,
        )
        page, last = take_page(rows, limit)
        return SubscriptionsPage(page, (last.created_at, last.id) if last else None)

    # --- admin reads --------------------------------------------------------------------

    def metrics(self, actor: Actor, span: domain.MetricsRange) -> domain.SubscriptionMetrics:
        actor.require_privileged("read subscription metrics")
        since, until = span.validate()

        def work(conn: Connection) -> domain.SubscriptionMetrics:
            repo = SubscriptionsRepository(conn)
            return domain.subscription_metrics(
                repo.revenue_units(),
                repo.count_by_status(),
                repo.count_started(since, until),
                repo.count_churned(since, until),
                repo.daily_invoice_revenue(since, until),
            )

        # One snapshot: REPEATABLE READ on PostgreSQL when read-only.
        return run_transaction(self.engine, work, read_only=True)

    def stripe_events(
        self, actor: Actor, *, status: str, type_: str, page_size: int, before: tuple[datetime, str] | None
    ) -> EventsPage:
        return list_events(
            self.engine, self.inbox, actor, status=status, type_=type_, page_size=page_size, before=before
        )

    def check_audit_chain(self, actor: Actor) -> ChainReport:
        """The audit log's hash chain, verified (admins and services)."""
        return check_audit_chain_as(actor, self.engine, AUDIT_CHAIN)

    def audit_records(
        self, actor: Actor, where: AuditFilter, *, page_size: int, before: tuple[datetime, str] | None
    ) -> AuditPage:
        return list_audit(self.engine, self.audit, actor, where, page_size=page_size, before=before)

    def present(self, actor: Actor, subscription_id: str) -> domain.Subscription:
        """The subscription as Stripe has it now (our record may lag behind an event still on its way)."""
        current = self.get(actor, subscription_id)
        if current.stripe_subscription_id is None:
            return current
        fresh = dataclasses.replace(current, synced_at=None)
        reading = self.provider.subscription(current.stripe_subscription_id)
        price = run_transaction(
            self.engine, lambda conn: SubscriptionsRepository(conn).price(reading.stripe_price_id), read_only=True
        )
        domain.apply_snapshot(fresh, reading, price, self.clock(), self.clock())
        return fresh

    @staticmethod
    def _visible(actor: Actor, subscription_id: str, found: domain.Subscription | None) -> domain.Subscription:
        if found is None or (actor.is_user and actor.id != found.user_id):
            raise domain.SubscriptionNotFound(subscription_id)
        return found

    # --- subscribing ------------------------------------------------------------------

    def create_checkout_session(
        self, actor: Actor, cmd: domain.Subscribe, call: IdempotentCall, encode: Callable[[CheckoutStarted], bytes]
    ) -> Outcome:
        cmd.validate(checkout=True)
        actor.require_access_to_user(cmd.user_id)
        plan, price = self._price_for(cmd)
        subscription_id = domain.subscription_id_for(call.caller, call.key)

        def at_stripe() -> CreatedCheckout:
            customer = self._customer(cmd.user_id)
            held = self._hold_slot(subscription_id, cmd, plan, price, customer)
            request = CheckoutRequest(
                customer_id=customer,
                price_id=price.stripe_price_id,
                quantity=cmd.quantity,
                trial_days=plan.trial_days,
                success_url=cmd.success_url,
                cancel_url=cmd.cancel_url,
                expires_at=int((held.pending_until or self.clock()).timestamp()),
                metadata={"subscription_id": subscription_id, "user_id": cmd.user_id, "plan_id": plan.plan_id},
            )
            return self._or_release(
                subscription_id,
                lambda: self.provider.create_checkout_session(
                    request, idempotency_key=derived_key("sub-checkout", call)
                ),
            )

        def record(conn: Connection, created: CreatedCheckout) -> bytes:
            repo = SubscriptionsRepository(conn)
            sub = repo.get(subscription_id, lock=True)
            assert sub is not None
            if sub.checkout_session_id is None:
                sub.checkout_session_id = created.id
                repo.save(sub)
            return encode(CheckoutStarted(sub, created.id, created.url))

        return self.idempotency.around_external_call(
            self.engine, call, stale_after=STALE_AFTER, external=at_stripe, record=record
        )

    def create_subscription(
        self, actor: Actor, cmd: domain.Subscribe, call: IdempotentCall, encode: Callable[[SubscriptionCreated], bytes]
    ) -> Outcome:
        cmd.validate(checkout=False)
        actor.require_access_to_user(cmd.user_id)
        plan, price = self._price_for(cmd)
        subscription_id = domain.subscription_id_for(call.caller, call.key)

        def at_stripe() -> tuple[datetime, CreatedSubscription]:
            customer = self._customer(cmd.user_id)
            self._hold_slot(subscription_id, cmd, plan, price, customer)
            created = self._or_release(
                subscription_id,
                lambda: self.provider.create_subscription(
                    customer_id=customer,
                    price_id=price.stripe_price_id,
                    quantity=cmd.quantity,
                    trial_days=plan.trial_days,
                    metadata={"subscription_id": subscription_id, "user_id": cmd.user_id, "plan_id": plan.plan_id},
                    idempotency_key=derived_key("sub-create", call),
                ),
            )
            return self.clock(), created  # versioned by its arrival, as in _operate

        def record(conn: Connection, result: tuple[datetime, CreatedSubscription]) -> bytes:
            read_at, created = result
            repo = SubscriptionsRepository(conn)
            sub = repo.get(subscription_id, lock=True)
            assert sub is not None
            fold(repo, sub, created.snapshot, read_at, self.clock())
            return encode(SubscriptionCreated(sub, created.client_secret))

        return self.idempotency.around_external_call(
            self.engine, call, stale_after=STALE_AFTER, external=at_stripe, record=record
        )

    def _price_for(self, cmd: domain.Subscribe) -> tuple[Plan, domain.PriceInfo]:
        plan = self.catalog.plan(cmd.plan_id)
        if plan is None:
            raise InvalidArgument.from_violations([FieldViolation("plan_id", f"no plan {cmd.plan_id!r} is on sale")])
        currency = cmd.currency or self.catalog.default_currency
        interval = cmd.interval or DEFAULT_INTERVAL
        if plan.price(currency, interval) is None:
            raise InvalidArgument.from_violations(
                [FieldViolation("currency", f"plan {plan.plan_id} has no {interval}ly price in {currency}")]
            )
        price = run_transaction(
            self.engine,
            lambda conn: SubscriptionsRepository(conn).active_price(plan.plan_id, currency, interval),
            read_only=True,
        )
        if price is None:
            raise domain.PlanNotSynced(
                f"plan {plan.plan_id} has no Stripe price for {currency}/{interval} yet: run the plan sync"
            )
        return plan, price

    def _customer(self, user_id: str) -> str:
        known = run_transaction(
            self.engine, lambda conn: SubscriptionsRepository(conn).customer(user_id), read_only=True
        )
        if known is not None:
            return known
        created = self.customers.ensure(user_id)
        return run_transaction(
            self.engine, lambda conn: SubscriptionsRepository(conn).add_customer(user_id, created, self.clock())
        )

    def _hold_slot(
        self, subscription_id: str, cmd: domain.Subscribe, plan: Plan, price: domain.PriceInfo, customer: str
    ) -> domain.Subscription:
        """Record the new subscription, holding the user's slot in the plan family; or refuse.

        An unfinished checkout in the family is replaced: its session is
        expired at Stripe first, so it can no longer be paid. Any other live
        subscription in the family is a refusal (ALREADY_EXISTS).
        """
        for attempt in range(2):
            outcome = run_transaction(
                self.engine, lambda conn: self._try_hold(conn, subscription_id, cmd, plan, price, customer)
            )
            if isinstance(outcome, domain.Subscription) and outcome.id == subscription_id:
                return outcome
            holder = outcome
            can_replace = holder.awaiting_checkout and holder.checkout_session_id is not None
            if attempt == 0 and can_replace and self._expire_checkout(holder):
                continue
            raise domain.SubscriptionExists(
                f"user {cmd.user_id} already has subscription {holder.id} in plan family {plan.family}: "
                f"it is {holder.describe_state()}",
                metadata={"subscription_id": holder.id, "status": holder.status.value},
            )
        raise AssertionError("unreachable")

    def _try_hold(
        self,
        conn: Connection,
        subscription_id: str,
        cmd: domain.Subscribe,
        plan: Plan,
        price: domain.PriceInfo,
        customer: str,
    ) -> domain.Subscription:
        """The new record (also when a retry finds it made), or the live subscription that holds the slot."""
        repo, now = SubscriptionsRepository(conn), self.clock()
        mine = repo.get(subscription_id, lock=True)
        if mine is not None:
            return mine
        holder = repo.live_in_family(cmd.user_id, plan.family, lock=True)
        if holder is not None:
            if not holder.abandoned(now):
                return holder
            holder.expire_checkout(now)
            repo.save(holder)
        sub = domain.Subscription(
            id=subscription_id,
            user_id=cmd.user_id,
            plan_id=plan.plan_id,
            family=plan.family,
            quantity=cmd.quantity,
            status=domain.Status.INCOMPLETE,
            currency=price.currency,
            interval=price.interval,
            stripe_price_id=price.stripe_price_id,
            stripe_customer_id=customer,
            pending_until=now + domain.CHECKOUT_HOLD,
            created_at=now,
            updated_at=now,
        )
        if repo.add(sub):
            return sub
        # A concurrent request took the slot first.
        winner = repo.live_in_family(cmd.user_id, plan.family)
        return winner if winner is not None else sub

    def _expire_checkout(self, holder: domain.Subscription) -> bool:
        assert holder.checkout_session_id is not None
        if not self.provider.expire_checkout_session(holder.checkout_session_id):
            return False  # paid meanwhile: it is a subscription now

        def work(conn: Connection) -> None:
            repo = SubscriptionsRepository(conn)
            locked = repo.get(holder.id, lock=True)
            if locked is not None and locked.awaiting_checkout:
                locked.expire_checkout(self.clock())
                repo.save(locked)

        run_transaction(self.engine, work)
        return True

    def _or_release(self, subscription_id: str, create: Callable[[], T]) -> T:
        """Create at Stripe; if Stripe refuses for good, free the slot the new record holds."""
        try:
            return create()
        except Unavailable:
            raise  # the caller retries with the same key and finds its record
        except BillingError:

            def release(conn: Connection) -> None:
                repo = SubscriptionsRepository(conn)
                sub = repo.get(subscription_id, lock=True)
                if sub is not None and sub.stripe_subscription_id is None and not sub.status.ended:
                    sub.expire_checkout(self.clock())
                    repo.save(sub)

            run_transaction(self.engine, release)
            raise

    # --- changes ----------------------------------------------------------------------

    def change(
        self,
        actor: Actor,
        subscription_id: str,
        cmd: domain.ChangePlan,
        call: IdempotentCall,
        encode: Callable[[domain.Subscription], bytes],
    ) -> Outcome:
        cmd.validate()
        current = self.get(actor, subscription_id)
        new_price: domain.PriceInfo | None = None
        if cmd.plan_id and cmd.plan_id != current.plan_id:
            _, new_price = self._price_for(
                domain.Subscribe(current.user_id, cmd.plan_id, current.currency, current.interval, 1)
            )
            plan = self.catalog.plan(cmd.plan_id)
            if plan is not None and plan.family != current.family:
                raise InvalidArgument.from_violations(
                    [FieldViolation("plan_id", f"plan {cmd.plan_id} is not in this subscription's family")]
                )

        def params(sub: domain.Subscription) -> dict[str, object]:
            domain.check_change(sub)
            item: dict[str, object] = {"id": sub.stripe_item_id}
            if new_price is not None:
                item["price"] = new_price.stripe_price_id
            if cmd.quantity:
                item["quantity"] = cmd.quantity
            return {"items": [item], "proration_behavior": cmd.proration.value}

        audited = Audited(
            "change",
            f"plan {cmd.plan_id or current.plan_id}, quantity {cmd.quantity or 'unchanged'}, "
            f"proration {cmd.proration.value}",
        )
        return self._update(actor, subscription_id, call, "change", params, encode, audited)

    def cancel(
        self,
        actor: Actor,
        subscription_id: str,
        cmd: domain.Cancel,
        call: IdempotentCall,
        encode: Callable[[domain.Subscription], bytes],
    ) -> Outcome:
        cmd.validate()
        self.get(actor, subscription_id)

        def note(sub: domain.Subscription) -> None:
            sub.cancellation_reason = cmd.reason or sub.cancellation_reason

        when = "at period end" if cmd.at_period_end else "now"
        audited = Audited("cancel", f"{when}; reason: {cmd.reason}" if cmd.reason else when)
        if cmd.at_period_end:

            def params(sub: domain.Subscription) -> dict[str, object]:
                domain.check_cancel(sub, at_period_end=True)
                details = {"comment": cmd.reason} if cmd.reason else {}
                return {"cancel_at_period_end": True, "cancellation_details": details}

            return self._update(actor, subscription_id, call, "cancel-at-end", params, encode, audited, note=note)

        def now(sub: domain.Subscription, key: str) -> domain.Snapshot:
            domain.check_cancel(sub, at_period_end=False)
            assert sub.stripe_subscription_id is not None
            return self.provider.cancel_subscription(sub.stripe_subscription_id, cmd.reason, idempotency_key=key)

        return self._operate(actor, subscription_id, call, "cancel", now, encode, audited, note=note)

    def reactivate(
        self, actor: Actor, subscription_id: str, call: IdempotentCall, encode: Callable[[domain.Subscription], bytes]
    ) -> Outcome:
        self.get(actor, subscription_id)

        def params(sub: domain.Subscription) -> dict[str, object]:
            domain.check_reactivate(sub)
            return {"cancel_at_period_end": False}

        def note(sub: domain.Subscription) -> None:
            sub.cancellation_reason = None

        return self._update(
            actor, subscription_id, call, "reactivate", params, encode, Audited("reactivate"), note=note
        )

    def pause(
        self,
        actor: Actor,
        subscription_id: str,
        cmd: domain.Pause,
        call: IdempotentCall,
        encode: Callable[[domain.Subscription], bytes],
    ) -> Outcome:
        cmd.validate(self.clock())
        self.get(actor, subscription_id)
        assert cmd.behavior is not None

        def params(sub: domain.Subscription) -> dict[str, object]:
            domain.check_pause(sub)
            pause: dict[str, object] = {"behavior": cmd.behavior.value if cmd.behavior else ""}
            if cmd.resumes_at is not None:
                pause["resumes_at"] = int(cmd.resumes_at.timestamp())
            return {"pause_collection": pause}

        resumes = f", resumes at {cmd.resumes_at.isoformat()}" if cmd.resumes_at is not None else ""
        audited = Audited("pause", f"behavior {cmd.behavior.value}{resumes}")
        return self._update(actor, subscription_id, call, "pause", params, encode, audited)

    def resume(
        self, actor: Actor, subscription_id: str, call: IdempotentCall, encode: Callable[[domain.Subscription], bytes]
    ) -> Outcome:
        self.get(actor, subscription_id)

        def at_stripe(sub: domain.Subscription, key: str) -> domain.Snapshot:
            domain.check_resume(sub)
            assert sub.stripe_subscription_id is not None
            if sub.status is domain.Status.PAUSED:
                return self.provider.resume_subscription(sub.stripe_subscription_id, idempotency_key=key)
            # An empty value unsets pause_collection at Stripe.
            return self.provider.update_subscription(
                sub.stripe_subscription_id, {"pause_collection": ""}, idempotency_key=key
            )

        return self._operate(actor, subscription_id, call, "resume", at_stripe, encode, Audited("resume"))

    def portal_session(self, actor: Actor, user_id: str, return_url: str) -> str:
        actor.require_access_to_user(user_id)
        domain.check_return_url(return_url)
        return self.provider.create_portal_session(self._customer(user_id), return_url)

    def _update(
        self,
        actor: Actor,
        subscription_id: str,
        call: IdempotentCall,
        kind: str,
        params: Callable[[domain.Subscription], dict[str, object]],
        encode: Callable[[domain.Subscription], bytes],
        audited: Audited,
        *,
        note: Callable[[domain.Subscription], None] | None = None,
    ) -> Outcome:
        def at_stripe(sub: domain.Subscription, key: str) -> domain.Snapshot:
            changes = params(sub)
            assert sub.stripe_subscription_id is not None
            return self.provider.update_subscription(sub.stripe_subscription_id, changes, idempotency_key=key)

        return self._operate(actor, subscription_id, call, kind, at_stripe, encode, audited, note=note)

    def _operate(
        self,
        actor: Actor,
        subscription_id: str,
        call: IdempotentCall,
        kind: str,
        at_stripe: Callable[[domain.Subscription, str], domain.Snapshot],
        encode: Callable[[domain.Subscription], bytes],
        audited: Audited,
        *,
        note: Callable[[domain.Subscription], None] | None = None,
    ) -> Outcome:
        """One change at Stripe, checked against the state once the key is held, then folded in.

        An admin's change is audited in the transaction that records it (a replay never gets here).
        """

        def external() -> tuple[datetime, domain.Snapshot]:
            current = self.present(actor, subscription_id)
            changed = at_stripe(current, derived_key(f"sub-{kind}", call))
            # Stripe's answer to our own change is its state once the change is made: it is
            # versioned by when the answer arrived, so that no reading asked for earlier (and
            # perhaps served before the change) can overwrite it.
            return self.clock(), changed

        def record(conn: Connection, result: tuple[datetime, domain.Snapshot]) -> bytes:
            read_at, snap = result
            repo = SubscriptionsRepository(conn)
            sub = repo.get(subscription_id, lock=True)
            assert sub is not None
            fold(repo, sub, snap, read_at, self.clock())
            if note is not None:
                note(sub)
                repo.save(sub)
            if is_audited(actor):
                self.audit.record(
                    conn,
                    actor=actor,
                    action=f"subscriptions.{audited.action}",
                    target=f"subscription:{subscription_id}",
                    detail=audited.detail,
                )
            return encode(sub)

        return self.idempotency.around_external_call(
            self.engine, call, stale_after=STALE_AFTER, external=external, record=record
        )

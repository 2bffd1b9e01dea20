"""Reconciliation rules: the credit ledger, Payments' records and Stripe compared. Pure Python, no I/O.

The input is what three sources said about one time range (see
`payments_svc.reconciler`, which gathers it): Payments' payments, refunds and
rejected Stripe events; the Credits transfers whose references name payments
(`payment:<payment id>` grants, `refund:<payment id>:<credits>` reversals); and,
optionally, Stripe's PaymentIntents and Refunds. The output is every
difference, each with a stable kind, the ids needed to act on it, what was
expected and found, and how to fix it.

A payment whose outbox still holds a message for Credits (`in_flight`) is not
judged against the ledger: its grant or reversal is on its way.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from payments_svc.domain import PAID, Payment, grant_reference

GRANT_PREFIX = "payment:"
REVERSAL_PREFIX = "refund:"
# Stripe PaymentIntent and Refund statuses that mean money moved (or is moving) for good.
STRIPE_PAID = "succeeded"
STRIPE_REFUND_LIVE = frozenset({"succeeded", "pending", "requires_action"})

REDRIVE = "POST /api/admin/webhook-events/payments/{event_id}/redrive"
FIND_EVENT = "GET /api/admin/webhook-events?service=payments&type=payment_intent.succeeded"
ADMIN_GRANT = "POST /api/admin/credits/grants"


class Kind(enum.StrEnum):
    """What differs; the values are stable (reports are read by scripts)."""

    # The ledger against Payments.
    PAID_PAYMENT_WITHOUT_GRANT = "paid_payment_without_grant"
    GRANT_WITHOUT_PAID_PAYMENT = "grant_without_paid_payment"
    GRANT_AMOUNT_MISMATCH = "grant_amount_mismatch"
    REFUND_WITHOUT_REVERSAL = "refund_without_reversal"
    REVERSAL_WITHOUT_REFUND = "reversal_without_refund"
    REVERSAL_AMOUNT_MISMATCH = "reversal_amount_mismatch"
    # Payments against Stripe.
    STRIPE_PAYMENT_MISSING_IN_PAYMENTS = "stripe_payment_missing_in_payments"
    STRIPE_PAYMENT_NOT_PAID_IN_PAYMENTS = "stripe_payment_not_paid_in_payments"
    PAYMENT_MISSING_AT_STRIPE = "payment_missing_at_stripe"
    PAYMENT_NOT_SUCCEEDED_AT_STRIPE = "payment_not_succeeded_at_stripe"
    AMOUNT_MISMATCH = "amount_mismatch"
    STRIPE_REFUND_MISSING_IN_PAYMENTS = "stripe_refund_missing_in_payments"
    REFUND_MISSING_AT_STRIPE = "refund_missing_at_stripe"
    # Payments' own inbox.
    EVENT_REJECTED = "event_rejected"


@dataclass(frozen=True)
class LedgerTransfer:
    """A Credits grant or reversal (kind "grant" or "reversal")."""

    transfer_id: str
    kind: str
    user_id: str
    amount: int
    reference: str
    created_at: datetime

    @property
    def payment_id(self) -> str | None:
        """The payment a Payments reference names; None for any other reference."""
        if self.kind == "grant" and self.reference.startswith(GRANT_PREFIX):
            return self.reference.removeprefix(GRANT_PREFIX)
        if self.kind == "reversal" and self.reference.startswith(REVERSAL_PREFIX):
            return self.reference.removeprefix(REVERSAL_PREFIX).rpartition(":")[0] or None
        return None


@dataclass(frozen=True)
class RefundRecord:
    """A refund Payments recorded (made through its Refund call)."""

    stripe_refund_id: str
    payment_id: str
    amount_minor: int
    currency: str
    status: str


@dataclass(frozen=True)
class StripeIntent:
    """A Stripe PaymentIntent; `payment_id` from its metadata (Payments' own intents carry one)."""

    id: str
    status: str
    amount_minor: int
    currency: str
    payment_id: str | None


@dataclass(frozen=True)
class StripeRefund:
    id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    status: str


@dataclass(frozen=True)
class RejectedEvent:
    event_id: str
    type: str
    detail: str


@dataclass(frozen=True)
class Sources:
    """Everything gathered for one range. `stripe_*` are None when Stripe was not asked."""

    payments: Iterable[Payment]
    refunds: Iterable[RefundRecord]
    transfers: Iterable[LedgerTransfer]
    rejected_events: Iterable[RejectedEvent] = ()
    in_flight: frozenset[str] = frozenset()
    stripe_intents: Iterable[StripeIntent] | None = None
    stripe_refunds: Iterable[StripeRefund] | None = None


@dataclass(frozen=True)
class Discrepancy:
    kind: Kind
    ids: Mapping[str, str]
    expected: str
    actual: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "ids": dict(self.ids),
            "expected": self.expected,
            "actual": self.actual,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Findings:
    discrepancies: list[Discrepancy]
    checked: dict[str, int] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)


def _ids(**ids: str | None) -> dict[str, str]:
    return {name: value for name, value in ids.items() if value}


def compare(sources: Sources) -> Findings:
    """Every difference between the sources, in a stable order (by kind, then ids)."""
    payments = {p.id: p for p in sources.payments}
    refunds = list(sources.refunds)
    transfers = list(sources.transfers)
    found = _ledger(payments, refunds, transfers, sources.in_flight)
    found += [
        Discrepancy(
            Kind.EVENT_REJECTED,
            _ids(event_id=e.event_id, event_type=e.type),
            "the event applied (processed or ignored)",
            f"rejected: {e.detail}",
            f"fix the cause, then re-drive it: {REDRIVE.format(event_id=e.event_id)}",
        )
        for e in sources.rejected_events
    ]
    checked = {
        "payments": len(payments),
        "refunds": len(refunds),
        "grants": sum(1 for t in transfers if t.kind == "grant" and t.payment_id),
        "reversals": sum(1 for t in transfers if t.kind == "reversal" and t.payment_id),
    }
    if sources.stripe_intents is not None:
        intents = list(sources.stripe_intents)
        stripe_refunds = list(sources.stripe_refunds or ())
        found += _stripe(payments, refunds, intents, stripe_refunds)
        checked["stripe_payment_intents"] = len(intents)
        checked["stripe_refunds"] = len(stripe_refunds)
    found.sort(key=lambda d: (list(Kind).index(d.kind), sorted(d.ids.items())))
    in_flight = sorted(p for p in sources.in_flight if p in payments)
    return Findings(found, checked, in_flight)


# --- the ledger against Payments -----------------------------------------------------------


def _ledger(
    payments: Mapping[str, Payment],
    refunds: list[RefundRecord],
    transfers: list[LedgerTransfer],
    in_flight: frozenset[str],
) -> list[Discrepancy]:
    grants: dict[str, LedgerTransfer] = {}
    reversals: dict[str, list[LedgerTransfer]] = defaultdict(list)
    for t in transfers:
        payment_id = t.payment_id
        if payment_id is None:
            continue
        if t.kind == "grant":
            grants[payment_id] = t
        else:
            reversals[payment_id].append(t)
    refund_ids: dict[str, list[str]] = defaultdict(list)
    for r in refunds:
        refund_ids[r.payment_id].append(r.stripe_refund_id)

    found: list[Discrepancy] = []
    for payment_id, grant in sorted(grants.items()):
        payment = payments.get(payment_id)
        if payment is None:
            found.append(
                Discrepancy(
                    Kind.GRANT_WITHOUT_PAID_PAYMENT,
                    _ids(transfer_id=grant.transfer_id, reference=grant.reference, user_id=grant.user_id),
                    f"a paid payment {payment_id}",
                    "no such payment in Payments",
                    "find who granted it (GET /api/admin/audit-log?service=credits); if it is wrong, reverse the "
                    f"grant {grant.transfer_id} with Credits' Reverse",
                )
            )
    for payment_id, taken_back in sorted(reversals.items()):
        if payment_id not in payments:
            found.append(
                Discrepancy(
                    Kind.REVERSAL_WITHOUT_REFUND,
                    _ids(
                        payment_id=payment_id,
                        transfer_ids=",".join(sorted(t.transfer_id for t in taken_back)),
                        user_id=taken_back[0].user_id,
                    ),
                    "a refunded payment",
                    f"no such payment in Payments; {sum(t.amount for t in taken_back)} credits reversed",
                    "find who reversed it (GET /api/admin/audit-log?service=credits); give the credits back with "
                    f"{ADMIN_GRANT} if it was wrong",
                )
            )
    for payment in sorted(payments.values(), key=lambda p: p.id):
        if payment.id in in_flight:
            continue
        found += _payment_against_ledger(payment, grants.get(payment.id), reversals.get(payment.id, []), refund_ids)
    return found


def _payment_against_ledger(
    payment: Payment,
    grant: LedgerTransfer | None,
    reversals: list[LedgerTransfer],
    refund_ids: Mapping[str, list[str]],
) -> list[Discrepancy]:
    reference = grant_reference(payment.id)
    base = _ids(
        payment_id=payment.id,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        user_id=payment.user_id,
    )
    paid = payment.status in PAID
    if grant is None:
        if not paid:
            return []
        return [
            Discrepancy(
                Kind.PAID_PAYMENT_WITHOUT_GRANT,
                {**base, "reference": reference},
                f"a grant of {payment.credits} credits with reference {reference}",
                "no grant",
                "look for a dead outbox message (key grant:<payment id>) and its error; then grant with "
                f'{ADMIN_GRANT} {{"user_id": "{payment.user_id}", "amount": {payment.credits}, '
                f'"source": "adjustment", "reference": "{reference}"}} (the reference makes it happen once)',
            )
        ]
    ids = {**base, "transfer_id": grant.transfer_id, "reference": reference}
    if not paid:
        return [
            Discrepancy(
                Kind.GRANT_WITHOUT_PAID_PAYMENT,
                ids,
                "a paid payment",
                f"payment is {payment.status.value}; {grant.amount} credits granted",
                "check the payment at Stripe (it may be paid and Payments behind: see the Stripe kinds); if it was "
                f"never paid, reverse the grant {grant.transfer_id} with Credits' Reverse",
            )
        ]
    found: list[Discrepancy] = []
    if grant.amount != payment.credits:
        found.append(
            Discrepancy(
                Kind.GRANT_AMOUNT_MISMATCH,
                ids,
                f"{payment.credits} credits",
                f"{grant.amount} credits",
                "grant the difference with an adjustment, or reverse the excess of the grant with Credits' Reverse",
            )
        )
    expected = max(payment.credits_owed_back(payment.amount_refunded_minor) - payment.credit_shortfall, 0)
    reversed_ = sum(t.amount for t in reversals)
    if expected == reversed_:
        return found
    refund_ids_text = ",".join(sorted(refund_ids.get(payment.id, [])))
    reversal_ids = ",".join(sorted(t.transfer_id for t in reversals))
    what = (
        f"{expected} credits reversed for {payment.amount_refunded_minor} {payment.currency} refunded "
        f"(shortfall {payment.credit_shortfall})"
    )
    if reversed_ == 0:
        kind, fix = (
            Kind.REFUND_WITHOUT_REVERSAL,
            "look for a dead outbox message (key reverse:<payment id>:...); then reverse the grant "
            f"{grant.transfer_id} by {expected} with Credits' Reverse, reference refund:{payment.id}:"
            f"{payment.credits_reversed}",
        )
    elif expected == 0:
        kind, fix = (
            Kind.REVERSAL_WITHOUT_REFUND,
            f"find who reversed it (audit log); give {reversed_} credits back with {ADMIN_GRANT} if it was wrong",
        )
    else:
        kind, fix = (
            Kind.REVERSAL_AMOUNT_MISMATCH,
            f"reverse the missing {expected - reversed_} credits, or grant back the excess {reversed_ - expected}"
            if expected > reversed_
            else f"grant back the excess {reversed_ - expected} credits with {ADMIN_GRANT}",
        )
    return [
        *found,
        Discrepancy(
            kind,
            {**ids, **_ids(stripe_refund_ids=refund_ids_text, reversal_transfer_ids=reversal_ids)},
            what,
            f"{reversed_} credits reversed",
            fix,
        ),
    ]


# --- Payments against Stripe ---------------------------------------------------------------


def _stripe(
    payments: Mapping[str, Payment],
    refunds: list[RefundRecord],
    intents: list[StripeIntent],
    stripe_refunds: list[StripeRefund],
) -> list[Discrepancy]:
    by_intent = {p.stripe_payment_intent_id: p for p in payments.values() if p.stripe_payment_intent_id}
    at_stripe = {i.id: i for i in intents}
    found: list[Discrepancy] = []
    for intent in sorted(at_stripe.values(), key=lambda i: i.id):
        payment = by_intent.get(intent.id) or (payments.get(intent.payment_id) if intent.payment_id else None)
        if payment is None and intent.payment_id is None:
            continue  # not one of Payments' (an invoice's, or made by hand)
        ids = _ids(
            payment_id=payment.id if payment else intent.payment_id,
            stripe_payment_intent_id=intent.id,
            user_id=payment.user_id if payment else None,
        )
        if intent.status == STRIPE_PAID and payment is None:
            found.append(
                Discrepancy(
                    Kind.STRIPE_PAYMENT_MISSING_IN_PAYMENTS,
                    ids,
                    "a paid payment in Payments",
                    "no such payment",
                    f"find its payment_intent.succeeded event ({FIND_EVENT}) and re-drive it ({REDRIVE}); "
                    "Payments records a payment it created from the event's metadata",
                )
            )
            continue
        if payment is None:
            continue
        if intent.status == STRIPE_PAID and payment.status not in PAID:
            found.append(
                Discrepancy(
                    Kind.STRIPE_PAYMENT_NOT_PAID_IN_PAYMENTS,
                    ids,
                    "paid (succeeded, partially_refunded or refunded)",
                    payment.status.value,
                    f"find the intent's rejected or ignored event ({FIND_EVENT}) and re-drive it ({REDRIVE}); "
                    "the payment then becomes paid and its credits are granted once",
                )
            )
        if (intent.amount_minor, intent.currency) != (payment.amount_minor, payment.currency):
            found.append(
                Discrepancy(
                    Kind.AMOUNT_MISMATCH,
                    ids,
                    f"{intent.amount_minor} {intent.currency} (Stripe)",
                    f"{payment.amount_minor} {payment.currency} (Payments)",
                    "Stripe's amount is what was charged: correct the payment's record, then refund or grant the "
                    "difference as the business decides",
                )
            )
    for payment in sorted(payments.values(), key=lambda p: p.id):
        if payment.status not in PAID:
            continue
        charged = at_stripe.get(payment.stripe_payment_intent_id or "")
        ids = _ids(payment_id=payment.id, stripe_payment_intent_id=payment.stripe_payment_intent_id)
        if charged is None:
            found.append(
                Discrepancy(
                    Kind.PAYMENT_MISSING_AT_STRIPE,
                    {**ids, "user_id": payment.user_id},
                    "a succeeded PaymentIntent at Stripe",
                    "no such PaymentIntent",
                    "check the Stripe account and key (test or live); if nothing was charged, reverse the grant "
                    f"(reference {grant_reference(payment.id)}) and correct the payment's record",
                )
            )
        elif charged.status != STRIPE_PAID:
            found.append(
                Discrepancy(
                    Kind.PAYMENT_NOT_SUCCEEDED_AT_STRIPE,
                    {**ids, "user_id": payment.user_id},
                    f"succeeded (Payments says {payment.status.value})",
                    charged.status,
                    "nothing was charged: reverse the grant "
                    f"(reference {grant_reference(payment.id)}) and correct the payment's record",
                )
            )
    ours = set(by_intent)
    recorded = {r.stripe_refund_id: r for r in refunds}
    live = {r.id: r for r in stripe_refunds if r.payment_intent_id in ours}
    for refund in sorted(live.values(), key=lambda r: r.id):
        if refund.id in recorded or refund.status not in STRIPE_REFUND_LIVE:
            continue
        payment = by_intent[refund.payment_intent_id]
        found.append(
            Discrepancy(
                Kind.STRIPE_REFUND_MISSING_IN_PAYMENTS,
                _ids(
                    payment_id=payment.id,
                    stripe_payment_intent_id=refund.payment_intent_id,
                    stripe_refund_id=refund.id,
                ),
                f"a refund of {refund.amount_minor} {refund.currency} recorded in Payments",
                "not recorded (made outside Payments, e.g. in Stripe's Dashboard)",
                "if the payment's refunded amount and reversal match (no other kind listed for it), nothing is "
                "owed: Payments learnt the total from charge.refunded; otherwise re-drive that event "
                f"({REDRIVE})",
            )
        )
    every_refund_at_stripe = {r.id for r in stripe_refunds}
    for record in sorted(recorded.values(), key=lambda r: r.stripe_refund_id):
        if record.stripe_refund_id in every_refund_at_stripe:
            continue
        payment = payments.get(record.payment_id)
        found.append(
            Discrepancy(
                Kind.REFUND_MISSING_AT_STRIPE,
                _ids(
                    payment_id=record.payment_id,
                    stripe_payment_intent_id=payment.stripe_payment_intent_id if payment else None,
                    stripe_refund_id=record.stripe_refund_id,
                ),
                f"a refund of {record.amount_minor} {record.currency} at Stripe",
                "no such refund",
                "check the Stripe account; if no money went back, refund again with "
                "POST /api/admin/payments/{payment_id}/refund, or correct the record",
            )
        )
    return found

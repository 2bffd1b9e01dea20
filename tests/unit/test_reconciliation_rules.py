"""The reconciliation rules alone: records in, differences out."""

from __future__ import annotations

from datetime import UTC, datetime

from payments_svc.domain import Payment, PaymentFlow, PaymentStatus
from payments_svc.reconciliation import (
    Kind,
    LedgerTransfer,
    RefundRecord,
    RejectedEvent,
    Sources,
    StripeIntent,
    StripeRefund,
    compare,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)


def payment(pid: str, status: PaymentStatus = PaymentStatus.SUCCEEDED, **fields: object) -> Payment:
    values: dict[str, object] = {
        "id": pid,
        "user_id": "u1",
        "package_id": "credits-100",
        "credits": 100,
        "amount_minor": 500,
        "currency": "usd",
        "flow": PaymentFlow.CHECKOUT,
        "status": status,
        "created_at": AT,
        "updated_at": AT,
        "stripe_payment_intent_id": f"pi_{pid}",
        **fields,
    }
    return Payment(**values)  # type: ignore[arg-type]


def grant(pid: str, amount: int = 100) -> LedgerTransfer:
    return LedgerTransfer(f"tr_g_{pid}", "grant", "u1", amount, f"payment:{pid}", AT)


def reversal(pid: str, amount: int, suffix: str = "1") -> LedgerTransfer:
    return LedgerTransfer(f"tr_r_{pid}_{suffix}", "reversal", "u1", amount, f"refund:{pid}:{suffix}", AT)


def intent(pid: str, status: str = "succeeded", amount: int = 500, currency: str = "usd") -> StripeIntent:
    return StripeIntent(f"pi_{pid}", status, amount, currency, pid)


def kinds(sources: Sources) -> list[tuple[Kind, str]]:
    return [
        (
            d.kind,
            d.ids.get("stripe_refund_id") or d.ids.get("payment_id") or d.ids.get("event_id") or d.ids["reference"],
        )
        for d in compare(sources).discrepancies
    ]


def test_agreeing_sources_report_nothing() -> None:
    refunded = payment("p2", PaymentStatus.PARTIALLY_REFUNDED, amount_refunded_minor=250, credits_reversed=50)
    sources = Sources(
        payments=[payment("p1"), refunded, payment("p3", PaymentStatus.PENDING)],
        refunds=[RefundRecord("re_1", "p2", 250, "usd", "succeeded")],
        transfers=[
            grant("p1"),
            grant("p2"),
            reversal("p2", 50),
            LedgerTransfer("tr_x", "grant", "u", 5, "promo:1", AT),
        ],
        stripe_intents=[intent("p1"), intent("p2"), intent("p3", "requires_payment_method")],
        stripe_refunds=[StripeRefund("re_1", "pi_p2", 250, "usd", "succeeded")],
    )
    findings = compare(sources)
    assert findings.discrepancies == []
    assert findings.checked == {
        "payments": 3,
        "refunds": 1,
        "grants": 2,
        "reversals": 1,
        "stripe_payment_intents": 3,
        "stripe_refunds": 1,
    }


def test_ledger_differences() -> None:
    sources = Sources(
        payments=[
            payment("nogrant"),
            payment("unpaid", PaymentStatus.FAILED),
            payment("short", credits=100),
            payment("norev", PaymentStatus.REFUNDED, amount_refunded_minor=500, credits_reversed=100),
            payment("extra"),
            payment("mismatch", PaymentStatus.PARTIALLY_REFUNDED, amount_refunded_minor=100, credits_reversed=20),
            payment(
                "spent", PaymentStatus.REFUNDED, amount_refunded_minor=500, credits_reversed=100, credit_shortfall=100
            ),
        ],
        refunds=[],
        transfers=[
            grant("unpaid"),
            grant("short", 90),
            grant("norev"),
            grant("extra"),
            reversal("extra", 10),
            grant("mismatch"),
            reversal("mismatch", 20),
            reversal("mismatch", 3, "later"),
            grant("spent"),
            grant("orphan"),
            reversal("gone", 4),
        ],
    )
    assert kinds(sources) == [
        (Kind.PAID_PAYMENT_WITHOUT_GRANT, "nogrant"),
        (Kind.GRANT_WITHOUT_PAID_PAYMENT, "unpaid"),
        (Kind.GRANT_WITHOUT_PAID_PAYMENT, "payment:orphan"),
        (Kind.GRANT_AMOUNT_MISMATCH, "short"),
        (Kind.REFUND_WITHOUT_REVERSAL, "norev"),
        (Kind.REVERSAL_WITHOUT_REFUND, "extra"),
        (Kind.REVERSAL_WITHOUT_REFUND, "gone"),
        (Kind.REVERSAL_AMOUNT_MISMATCH, "mismatch"),
    ]
    without = next(d for d in compare(sources).discrepancies if d.kind is Kind.PAID_PAYMENT_WITHOUT_GRANT)
    assert without.ids == {
        "payment_id": "nogrant",
        "stripe_payment_intent_id": "pi_nogrant",
        "user_id": "u1",
        "reference": "payment:nogrant",
    }
    assert '"reference": "payment:nogrant"' in without.fix


def test_payments_in_flight_are_not_judged_against_the_ledger() -> None:
    findings = compare(Sources(payments=[payment("p1")], refunds=[], transfers=[], in_flight=frozenset({"p1", "x"})))
    assert findings.discrepancies == []
    assert findings.in_flight == ["p1"]


def test_stripe_differences() -> None:
    sources = Sources(
        payments=[
            payment("behind", PaymentStatus.PENDING),
            payment("nocharge"),
            payment("notpaid"),
            payment("amount"),
            payment("refunds", PaymentStatus.PARTIALLY_REFUNDED, amount_refunded_minor=100, credits_reversed=20),
        ],
        refunds=[RefundRecord("re_ours", "refunds", 50, "usd", "succeeded")],
        transfers=[grant(p) for p in ("nocharge", "notpaid", "amount", "refunds")] + [reversal("refunds", 20)],
        rejected_events=[RejectedEvent("evt_1", "charge.refunded", "malformed")],
        stripe_intents=[
            intent("behind"),
            intent("notpaid", "requires_payment_method"),
            intent("amount", currency="eur"),
            intent("refunds"),
            intent("ghost"),
            StripeIntent("pi_invoice", "succeeded", 900, "usd", None),  # not Payments': skipped
        ],
        stripe_refunds=[
            StripeRefund("re_dashboard", "pi_refunds", 50, "usd", "succeeded"),
            StripeRefund("re_failed", "pi_refunds", 50, "usd", "failed"),
            StripeRefund("re_invoice", "pi_invoice", 900, "usd", "succeeded"),
        ],
    )
    assert kinds(sources) == [
        (Kind.STRIPE_PAYMENT_MISSING_IN_PAYMENTS, "ghost"),
        (Kind.STRIPE_PAYMENT_NOT_PAID_IN_PAYMENTS, "behind"),
        (Kind.PAYMENT_MISSING_AT_STRIPE, "nocharge"),
        (Kind.PAYMENT_NOT_SUCCEEDED_AT_STRIPE, "notpaid"),
        (Kind.AMOUNT_MISMATCH, "amount"),
        (Kind.STRIPE_REFUND_MISSING_IN_PAYMENTS, "re_dashboard"),
        (Kind.REFUND_MISSING_AT_STRIPE, "re_ours"),
        (Kind.EVENT_REJECTED, "evt_1"),
    ]
    ghost = compare(sources).discrepancies[0]
    assert ghost.ids == {"payment_id": "ghost", "stripe_payment_intent_id": "pi_ghost"}
    assert ghost.as_dict()["kind"] == "stripe_payment_missing_in_payments"


def test_without_stripe_nothing_is_compared_with_stripe() -> None:
    findings = compare(Sources(payments=[payment("p1")], refunds=[], transfers=[grant("p1")]))
    assert findings.discrepancies == []
    assert "stripe_payment_intents" not in findings.checked


def test_reversal_references_name_their_payment() -> None:
    assert reversal("pay_1", 5, "40").payment_id == "pay_1"
    assert LedgerTransfer("t", "reversal", "u", 1, "refund:nocolon", AT).payment_id is None
    assert LedgerTransfer("t", "grant", "u", 1, "invoice:in_1", AT).payment_id is None
    assert LedgerTransfer("t", "reversal", "u", 1, "payment:p", AT).payment_id is None

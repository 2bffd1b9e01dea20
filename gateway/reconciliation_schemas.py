"""The JSON of `POST /api/admin/reconciliation` (conventions as in `gateway.schemas`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.payments.v1 import payments_pb2
from gateway.admin_schemas import utc
from gateway.schemas import Body, UtcTime

# One request compares at most this many days (Payments refuses more); the command has no limit.
MAX_RECONCILIATION_DAYS = 31
MAX_DAYS_TEXT = f"at most {MAX_RECONCILIATION_DAYS} days after since"
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)


class ReconciliationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    since: date = Field(ge=EARLIEST, le=LATEST, description="First UTC day, YYYY-MM-DD (included).")
    until: date = Field(
        ge=EARLIEST,
        le=LATEST,
        description=f"Day after the last, YYYY-MM-DD; at most {MAX_RECONCILIATION_DAYS} days later.",
    )
    stripe: bool = Field(default=True, description="Also compare with Stripe; false compares with the ledger only.")

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.since >= self.until:
            raise ValueError("since must be before until")
        if self.until - self.since > timedelta(days=MAX_RECONCILIATION_DAYS):
            raise ValueError(f"a range is at most {MAX_RECONCILIATION_DAYS} days")
        return self


class Discrepancy(Body):
    kind: str = Field(description="Stable kind, e.g. `paid_payment_without_grant` (docs/operations.md lists them).")
    ids: dict[str, str] = Field(description="The ids involved: payment_id, stripe_payment_intent_id, transfer_id, ...")
    expected: str
    actual: str
    fix: str = Field(description="How to fix it: the admin endpoint or call to use.")


class ReconciliationReport(Body):
    since: UtcTime
    until: UtcTime
    stripe: bool = Field(description="Whether Stripe was compared.")
    checked: dict[str, int] = Field(description="Records compared per source (payments, grants, ...).")
    in_flight: list[str] = Field(description="Payments whose grant or reversal is still on its way: not judged.")
    discrepancies: list[Discrepancy] = Field(description="Every difference; empty when all agree.")

    @classmethod
    def from_pb(cls, r: payments_pb2.ReconcileResponse) -> ReconciliationReport:
        return cls(
            since=utc(r.since),
            until=utc(r.until),
            stripe=r.stripe_checked,
            checked=dict(r.checked),
            in_flight=list(r.in_flight_payment_ids),
            discrepancies=[
                Discrepancy(kind=d.kind, ids=dict(d.ids), expected=d.expected, actual=d.actual, fix=d.fix)
                for d in r.discrepancies
            ],
        )

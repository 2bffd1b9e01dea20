"""The error taxonomy every service speaks, independent of any transport.

Each error names the invariant or rule that broke (its reason) and the kind of
failure (which the gRPC layer maps to a status code). Domain modules subclass
these; `svckit.grpc_errors` turns them into gRPC statuses with google.rpc details.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


class Reason(enum.StrEnum):
    """Stable reasons carried in ErrorInfo.reason; mirrors billing.common.v1.ErrorReason."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_FLIGHT = "IDEMPOTENCY_KEY_IN_FLIGHT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    DUPLICATE_REFERENCE = "DUPLICATE_REFERENCE"
    NOT_REVERSIBLE = "NOT_REVERSIBLE"
    REVERSAL_EXCEEDS_REMAINING = "REVERSAL_EXCEEDS_REMAINING"
    CONCURRENT_UPDATE = "CONCURRENT_UPDATE"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    PAYMENT_PROVIDER_REJECTED = "PAYMENT_PROVIDER_REJECTED"
    PAYMENT_NOT_REFUNDABLE = "PAYMENT_NOT_REFUNDABLE"
    REFUND_EXCEEDS_REMAINING = "REFUND_EXCEEDS_REMAINING"
    SUBSCRIPTION_EXISTS = "SUBSCRIPTION_EXISTS"
    SUBSCRIPTION_STATE = "SUBSCRIPTION_STATE"
    PLAN_NOT_SYNCED = "PLAN_NOT_SYNCED"
    EVENT_NOT_REDRIVABLE = "EVENT_NOT_REDRIVABLE"
    HOLD_SETTLED = "HOLD_SETTLED"
    CAPTURE_EXCEEDS_HOLD = "CAPTURE_EXCEEDS_HOLD"


class Kind(enum.Enum):
    """The class of failure; decides the gRPC status code."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    UNIMPLEMENTED = "UNIMPLEMENTED"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class BillingError(Exception):
    """Base of every error a service reports to its caller on purpose."""

    kind: Kind = Kind.INTERNAL
    reason: Reason = Reason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Iterable[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: tuple[FieldViolation, ...] = tuple(violations)


class InvalidArgument(BillingError):
    kind = Kind.INVALID_ARGUMENT
    reason = Reason.INVALID_ARGUMENT

    @classmethod
    def from_violations(cls, violations: Iterable[FieldViolation]) -> InvalidArgument:
        found = tuple(violations)
        fields = ", ".join(v.field for v in found)
        return cls(f"invalid request: {fields}", violations=found)


class NotFound(BillingError):
    kind = Kind.NOT_FOUND
    reason = Reason.NOT_FOUND


class AlreadyExists(BillingError):
    kind = Kind.ALREADY_EXISTS


class FailedPrecondition(BillingError):
    kind = Kind.FAILED_PRECONDITION


class Aborted(BillingError):
    kind = Kind.ABORTED
    reason = Reason.CONCURRENT_UPDATE


class Unauthenticated(BillingError):
    kind = Kind.UNAUTHENTICATED
    reason = Reason.UNAUTHENTICATED


class PermissionDenied(BillingError):
    kind = Kind.PERMISSION_DENIED
    reason = Reason.PERMISSION_DENIED


class Unavailable(BillingError):
    kind = Kind.UNAVAILABLE
    reason = Reason.DEPENDENCY_UNAVAILABLE


class Unimplemented(BillingError):
    kind = Kind.UNIMPLEMENTED
    reason = Reason.NOT_IMPLEMENTED


class Violations:
    """Collects field violations so a request reports every bad field at once."""

    def __init__(self) -> None:
        self._found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._found.append(FieldViolation(field, description))

    def check_url(self, field: str, url: str) -> None:
        """The field must be an absolute http(s) URL of a sensible length."""
        parts = urlsplit(url)
        if len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.netloc:
            self.add(field, "required: an absolute http(s) URL")

    def check_range(self, since: datetime | None, until: datetime | None, *, required: bool) -> None:
        """A time range [since, until): both given when `required`, and since before until when both are."""
        if required and since is None:
            self.add("since", "required: the start of the range (inclusive)")
        if required and until is None:
            self.add("until", "required: the end of the range (exclusive)")
        if since is not None and until is not None and since >= until:
            self.add("until", "must be later than since")

    def raise_if_any(self) -> None:
        if self._found:
            raise InvalidArgument.from_violations(self._found)

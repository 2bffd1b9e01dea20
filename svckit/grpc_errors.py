"""BillingError <-> gRPC status with google.rpc details (ErrorInfo, BadRequest, RequestInfo).

Servers send: code from the error's kind, ErrorInfo{reason, domain="billing",
metadata}, BadRequest field violations when there are any, RequestInfo with the
request id. Clients read the same back with `RpcErrorDetails.from_error`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from svckit.errors import BillingError, FieldViolation, Kind, Reason

DOMAIN = "billing"
DETAILS_KEY = "grpc-status-details-bin"

KIND_TO_CODE: dict[Kind, grpc.StatusCode] = {
    Kind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Kind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.ABORTED: grpc.StatusCode.ABORTED,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
    Kind.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_grpc_status(error: BillingError, request_id: str) -> grpc.Status:
    code = KIND_TO_CODE[error.kind]
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=str(error.reason), domain=DOMAIN, metadata=error.metadata)),
        _pack(error_details_pb2.RequestInfo(request_id=request_id)),
    ]
    if error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in error.violations
                    ]
                )
            )
        )
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)  # type: ignore[no-any-return]


def internal_error(request_id: str) -> grpc.Status:
    return to_grpc_status(
        BillingError(f"internal error; quote request id {request_id} when reporting it", reason=Reason.INTERNAL),
        request_id,
    )


@dataclass(frozen=True)
class RpcErrorDetails:
    """What a client learns from a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()
    request_id: str = ""

    @classmethod
    def from_error(cls, error: grpc.RpcError) -> RpcErrorDetails:
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        trailing: Iterable[tuple[str, str | bytes]] = error.trailing_metadata() or ()  # type: ignore[assignment]
        raw = next((value for key, value in trailing if key == DETAILS_KEY), None)
        if raw is None:
            return cls(code=code, message=message)
        status = status_pb2.Status.FromString(raw if isinstance(raw, bytes) else raw.encode())
        reason, request_id = "", ""
        metadata: dict[str, str] = {}
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
                req = error_details_pb2.RequestInfo()
                detail.Unpack(req)
                request_id = req.request_id
        return cls(
            code=code,
            message=status.message or message,
            reason=reason,
            metadata=metadata,
            violations=violations,
            request_id=request_id,
        )

"""The admin views every service answers alike, as `billing.common.v1` messages: inbox events, audit records,
and the (time, id) page tokens of both."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1 import admin_pb2
from svckit.audit import AuditRecord
from svckit.errors import FieldViolation, InvalidArgument
from svckit.inbox import StoredEvent
from svckit.pagination import decode_page_token, encode_page_token


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def event_to_pb(event: StoredEvent) -> admin_pb2.StripeEventRecord:
    return admin_pb2.StripeEventRecord(
        event_id=event.event_id,
        type=event.type,
        status=event.status,
        detail=event.detail,
        receive_time=_timestamp(event.received_at),
        redrives=event.redrives,
    )


def audit_to_pb(record: AuditRecord, service: str) -> admin_pb2.AuditRecord:
    return admin_pb2.AuditRecord(
        id=record.id,
        actor=record.actor,
        action=record.action,
        target=record.target,
        request_id=record.request_id,
        detail=record.detail,
        time=_timestamp(record.created_at),
        service=service,
    )


def position_token(position: tuple[datetime, str] | None) -> str:
    """The page token of a (time, id) position; empty on the last page."""
    if position is None:
        return ""
    at, ident = position
    return encode_page_token({"t": at.isoformat(), "id": ident})


def position_from_token(token: str) -> tuple[datetime, str] | None:
    position = decode_page_token(token)
    if not position:
        return None
    try:
        at, ident = datetime.fromisoformat(str(position["t"])), str(position["id"])
    except (KeyError, TypeError, ValueError):
        at, ident = None, ""
    if at is None or at.tzinfo is None or not ident:
        raise InvalidArgument.from_violations([FieldViolation("page_token", "not a page token this service issued")])
    return at.astimezone(UTC), ident

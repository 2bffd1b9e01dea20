"""The admin views every service answers alike, as `billing.common.v1` messages: inbox events, audit records,
hash chain checks."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from billing.common.v1 import admin_pb2
from svckit.audit import AuditRecord
from svckit.chain import ChainReport
from svckit.inbox import StoredEvent


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


def chain_to_pb(report: ChainReport) -> admin_pb2.ChainCheck:
    message = admin_pb2.ChainCheck(
        chain=report.chain,
        intact=report.intact,
        sealed=report.sealed,
        unsealed=report.unsealed,
        head_hash=report.head_hash,
    )
    first = report.first_break
    if first is not None:
        message.first_break.CopyFrom(
            admin_pb2.ChainBreak(
                seq=first.seq,
                row_id=first.row_id,
                reason=first.reason,
                computed_hash=first.computed_hash,
                sealed_hash=first.sealed_hash,
            )
        )
    return message

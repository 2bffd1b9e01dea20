"""billing.payments.v1.PaymentsService: the contract is a first draft.

Every method answers UNIMPLEMENTED (reason NOT_IMPLEMENTED) until the Payments
domain lands; the server already runs with health, reflection, credentials,
idempotency storage and migrations.
"""

from __future__ import annotations

from typing import cast

from billing.payments.v1 import payments_pb2, payments_pb2_grpc
from svckit.server import draft_servicer

DESCRIPTOR = payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"]
SERVICE_NAME = DESCRIPTOR.full_name


def payments_servicer() -> payments_pb2_grpc.PaymentsServiceServicer:
    return cast(
        payments_pb2_grpc.PaymentsServiceServicer, draft_servicer(payments_pb2_grpc.PaymentsServiceServicer, DESCRIPTOR)
    )

"""Builds the Payments service from settings. Nothing is built at import time."""

from __future__ import annotations

from pathlib import Path

import grpc

from billing.payments.v1 import payments_pb2_grpc
from payments_svc.config import PaymentsSettings
from payments_svc.grpc_server import SERVICE_NAME, payments_servicer
from payments_svc.models import idempotency_records
from svckit.bootstrap import idempotency_purge, open_database
from svckit.idempotency import IdempotencyStore
from svckit.server import GrpcService, ServiceDefinition

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PaymentsSettings) -> GrpcService:
    engine = open_database(settings, MIGRATIONS, "payments")
    idempotency = IdempotencyStore(idempotency_records)

    def register(server: grpc.aio.Server) -> None:
        payments_pb2_grpc.add_PaymentsServiceServicer_to_server(payments_servicer(), server)

    return GrpcService(
        settings,
        ServiceDefinition(
            name="payments",
            service_names=[SERVICE_NAME],
            register=register,
            periodic=[idempotency_purge(idempotency, engine, settings)],
            on_stop=engine.dispose,
        ),
    )

"""Builds the Subscriptions service from settings. Nothing is built at import time."""

from __future__ import annotations

from pathlib import Path

import grpc

from billing.subscriptions.v1 import subscriptions_pb2_grpc
from subscriptions_svc.config import SubscriptionsSettings
from subscriptions_svc.grpc_server import SERVICE_NAME, subscriptions_servicer
from subscriptions_svc.models import idempotency_records
from svckit.bootstrap import idempotency_purge, open_database
from svckit.idempotency import IdempotencyStore
from svckit.server import GrpcService, ServiceDefinition

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: SubscriptionsSettings) -> GrpcService:
    engine = open_database(settings, MIGRATIONS, "subscriptions")
    idempotency = IdempotencyStore(idempotency_records)

    def register(server: grpc.aio.Server) -> None:
        subscriptions_pb2_grpc.add_SubscriptionsServiceServicer_to_server(subscriptions_servicer(), server)

    return GrpcService(
        settings,
        ServiceDefinition(
            name="subscriptions",
            service_names=[SERVICE_NAME],
            register=register,
            periodic=[idempotency_purge(idempotency, engine, settings)],
            on_stop=engine.dispose,
        ),
    )

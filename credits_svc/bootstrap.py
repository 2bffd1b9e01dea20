"""Builds the Credits service from settings. Nothing is built at import time."""

from __future__ import annotations

from pathlib import Path

import grpc

from billing.credits.v1 import credits_pb2_grpc
from credits_svc.config import CreditsSettings
from credits_svc.expiry import run_expiry
from credits_svc.grpc_server import SERVICE_NAME, CreditsServicer
from credits_svc.hold_service import HoldService
from credits_svc.metrics import LedgerCheckRecord, LedgerCollector
from credits_svc.models import idempotency_records
from credits_svc.rollup import roll_up
from credits_svc.sealing import seal_all
from credits_svc.service import CreditsService, new_transfer_id
from svckit.audit_chain import sealer_task
from svckit.bootstrap import idempotency_purge, open_database
from svckit.idempotency import IdempotencyStore
from svckit.server import GrpcService, PeriodicTask, ServiceDefinition

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: CreditsSettings) -> GrpcService:
    engine = open_database(settings, MIGRATIONS, "credits")
    idempotency = IdempotencyStore(idempotency_records)
    service = CreditsService(engine, idempotency)
    holds = HoldService(engine, idempotency, new_transfer_id)
    checks = LedgerCheckRecord()
    ledger_check = PeriodicTask("check the ledger", settings.ledger_check_seconds, lambda: checks.run(engine))

    def register(server: grpc.aio.Server) -> None:
        credits_pb2_grpc.add_CreditsServiceServicer_to_server(CreditsServicer(service, holds), server)

    return GrpcService(
        settings,
        ServiceDefinition(
            name="credits",
            service_names=[SERVICE_NAME],
            register=register,
            periodic=[
                idempotency_purge(idempotency, engine, settings),
                # Safe on every replica at once: one claims the watermark, the others skip their turn.
                PeriodicTask("roll up credit totals", settings.totals_rollup_seconds, lambda: roll_up(engine)),
                # Safe on every replica at once: each wallet and hold is settled under its own row lock.
                PeriodicTask(
                    "expire credits and holds",
                    settings.expiry_seconds,
                    lambda: run_expiry(engine, holds, new_transfer_id),
                ),
                sealer_task(settings, lambda: seal_all(engine)),
                *([ledger_check] if settings.ledger_check_seconds else []),
            ],
            on_stop=engine.dispose,
            collectors=[LedgerCollector(engine, checks)],
        ),
    )

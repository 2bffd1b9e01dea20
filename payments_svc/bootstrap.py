"""Builds the Payments service from settings. Nothing is built at import time."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc

from billing.payments.v1 import payments_pb2_grpc
from payments_svc.catalog import load_catalog
from payments_svc.config import PaymentsSettings
from payments_svc.credits_relay import CreditsRelay, CreditsTarget
from payments_svc.grpc_server import SERVICE_NAME, PaymentsServicer
from payments_svc.models import AUDIT_CHAIN, idempotency_records, outbox_messages, stripe_events
from payments_svc.reconciler import Reconciler
from payments_svc.service import PaymentsService
from payments_svc.stripe_provider import StripePaymentProvider
from svckit.audit_chain import sealer_task
from svckit.bootstrap import idempotency_purge, open_database
from svckit.chain import seal
from svckit.idempotency import IdempotencyStore
from svckit.inbox import Inbox
from svckit.metrics import OutboxCollector
from svckit.outbox import Outbox, OutboxRelay, RelaySettings
from svckit.server import GrpcService, ServiceDefinition
from svckit.stripe_client import StripeSettings

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def fault_injector(point_to_fail: str) -> Callable[[str], None]:
    """SIGKILL this process when the named point is reached (tests only; settings refuse it elsewhere)."""

    def reach(point: str) -> None:
        if point_to_fail and point == point_to_fail.removeprefix("crash-"):
            log.warning("fault injection: killing the process at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)

    return reach


def stripe_settings(settings: PaymentsSettings) -> StripeSettings:
    return StripeSettings(
        secret_key=settings.stripe_secret_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        api_version=settings.stripe_api_version,
        max_network_retries=settings.stripe_max_network_retries,
        timeout_seconds=settings.stripe_timeout_seconds,
    )


def credits_target_of(settings: PaymentsSettings) -> CreditsTarget:
    return CreditsTarget(
        address=settings.credits_target,
        token=settings.credits_token.get_secret_value(),
        deadline_seconds=settings.credits_deadline_seconds,
    )


def build(settings: PaymentsSettings) -> GrpcService:
    catalog = load_catalog(settings.catalog_file)
    engine = open_database(settings, MIGRATIONS, "payments")
    idempotency = IdempotencyStore(idempotency_records)
    outbox = Outbox(outbox_messages)
    provider = StripePaymentProvider(stripe_settings(settings), test_clocks=settings.stripe_test_clocks)
    credits_target = credits_target_of(settings)
    credits = CreditsRelay(credits_target, fault=fault_injector(settings.fault_injection))
    relay = OutboxRelay(
        engine,
        outbox,
        credits.handlers(),
        RelaySettings(
            poll_seconds=settings.outbox_poll_seconds, lease=timedelta(seconds=settings.outbox_lease_seconds)
        ),
    )
    service = PaymentsService(
        engine,
        idempotency=idempotency,
        inbox=Inbox(stripe_events),
        outbox=outbox,
        provider=provider,
        catalog=catalog,
        outbox_written=relay.wake,
        reconciler=Reconciler(engine, credits_target, provider.client),
    )

    def register(server: grpc.aio.Server) -> None:
        payments_pb2_grpc.add_PaymentsServiceServicer_to_server(PaymentsServicer(service), server)

    return GrpcService(
        settings,
        ServiceDefinition(
            name="payments",
            service_names=[SERVICE_NAME],
            register=register,
            periodic=[
                idempotency_purge(idempotency, engine, settings),
                sealer_task(settings, lambda: seal(engine, AUDIT_CHAIN)),
            ],
            background=[relay.run] if settings.outbox_relay else [],
            on_stop=engine.dispose,
            collectors=[OutboxCollector("payments", engine, outbox_messages)],
        ),
    )

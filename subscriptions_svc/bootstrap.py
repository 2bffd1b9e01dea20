"""Builds the Subscriptions service from settings. Nothing is built at import time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc

from billing.subscriptions.v1 import subscriptions_pb2_grpc
from subscriptions_svc.config import SubscriptionsSettings
from subscriptions_svc.customers import PaymentsCustomers
from subscriptions_svc.event_handler import StripeEventHandler
from subscriptions_svc.grpc_server import SERVICE_NAME, SubscriptionsServicer
from subscriptions_svc.models import AUDIT_CHAIN, audit_records, idempotency_records, outbox_messages, stripe_events
from subscriptions_svc.outbox_handlers import OutboxHandlers
from subscriptions_svc.plans import load_plans
from subscriptions_svc.service import SubscriptionsService
from subscriptions_svc.stripe_provider import StripeSubscriptionProvider
from svckit.audit import AuditLog
from svckit.audit_chain import sealer_task
from svckit.bootstrap import idempotency_purge, open_database
from svckit.chain import seal
from svckit.idempotency import IdempotencyStore
from svckit.inbox import Inbox
from svckit.mail import mailer_for
from svckit.metrics import OutboxCollector
from svckit.outbox import Outbox, OutboxRelay, RelaySettings
from svckit.server import GrpcService, ServiceDefinition
from svckit.service_client import ServiceTarget

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: SubscriptionsSettings) -> GrpcService:
    catalog = load_plans(settings.plans_file)
    engine = open_database(settings, MIGRATIONS, "subscriptions")
    idempotency = IdempotencyStore(idempotency_records)
    outbox = Outbox(outbox_messages)
    inbox = Inbox(stripe_events)
    audit = AuditLog(audit_records)
    provider = StripeSubscriptionProvider(settings.stripe())
    deadline = settings.call_deadline_seconds
    handlers = OutboxHandlers(
        ServiceTarget(settings.credits_target, settings.credits_token.get_secret_value(), deadline),
        mailer_for(settings.mail_endpoint, settings.mail_token.get_secret_value()),
        settings.mail_from,
        provider,
    )
    relay = OutboxRelay(
        engine,
        outbox,
        handlers.handlers(),
        RelaySettings(
            poll_seconds=settings.outbox_poll_seconds, lease=timedelta(seconds=settings.outbox_lease_seconds)
        ),
    )
    service = SubscriptionsService(
        engine,
        idempotency=idempotency,
        provider=provider,
        catalog=catalog,
        customers=PaymentsCustomers(
            ServiceTarget(settings.payments_target, settings.payments_token.get_secret_value(), deadline)
        ),
        audit=audit,
        inbox=inbox,
    )
    events = StripeEventHandler(
        engine,
        idempotency=idempotency,
        inbox=inbox,
        outbox=outbox,
        provider=provider,
        catalog=catalog,
        outbox_written=relay.wake,
        audit=audit,
    )

    def register(server: grpc.aio.Server) -> None:
        subscriptions_pb2_grpc.add_SubscriptionsServiceServicer_to_server(
            SubscriptionsServicer(service, events), server
        )

    return GrpcService(
        settings,
        ServiceDefinition(
            name="subscriptions",
            service_names=[SERVICE_NAME],
            register=register,
            periodic=[
                idempotency_purge(idempotency, engine, settings),
                sealer_task(settings, lambda: seal(engine, AUDIT_CHAIN)),
            ],
            background=[relay.run] if settings.outbox_relay else [],
            on_stop=engine.dispose,
            collectors=[OutboxCollector("subscriptions", engine, outbox_messages)],
        ),
    )

"""billing.subscriptions.v1.SubscriptionsService: the contract is a first draft.

Every method answers UNIMPLEMENTED (reason NOT_IMPLEMENTED) until the Subscriptions
domain lands; the server already runs with health, reflection, credentials,
idempotency storage and migrations.
"""

from __future__ import annotations

from typing import cast

from billing.subscriptions.v1 import subscriptions_pb2, subscriptions_pb2_grpc
from svckit.server import draft_servicer

DESCRIPTOR = subscriptions_pb2.DESCRIPTOR.services_by_name["SubscriptionsService"]
SERVICE_NAME = DESCRIPTOR.full_name


def subscriptions_servicer() -> subscriptions_pb2_grpc.SubscriptionsServiceServicer:
    return cast(
        subscriptions_pb2_grpc.SubscriptionsServiceServicer,
        draft_servicer(subscriptions_pb2_grpc.SubscriptionsServiceServicer, DESCRIPTOR),
    )

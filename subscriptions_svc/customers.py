"""Whose Stripe customer a user is: asked of the Payments service, which creates each user's customer once.

Both services bill the same Stripe customer, so the Customer Portal shows a
user's purchases and subscriptions together. Answers are kept in this
service's database; Payments is asked only the first time.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from billing.payments.v1 import payments_pb2, payments_pb2_grpc
from svckit.errors import BillingError, Reason, Unavailable
from svckit.service_client import ServiceTarget, call_metadata, channel_options


class CustomerDirectory(Protocol):
    def ensure(self, user_id: str) -> str: ...


class PaymentsCustomers:
    """The Payments service's EnsureCustomer, called from a worker thread (a blocking channel of its own)."""

    def __init__(self, target: ServiceTarget) -> None:
        self.target = target
        self._stub: payments_pb2_grpc.PaymentsServiceStub | None = None

    @property
    def stub(self) -> payments_pb2_grpc.PaymentsServiceStub:
        if self._stub is None:
            self._stub = payments_pb2_grpc.PaymentsServiceStub(
                grpc.insecure_channel(self.target.address, options=channel_options())
            )
        return self._stub

    def ensure(self, user_id: str) -> str:
        try:
            response = self.stub.EnsureCustomer(
                payments_pb2.EnsureCustomerRequest(user_id=user_id),
                metadata=call_metadata(self.target.token, "subscriptions"),
                timeout=self.target.deadline_seconds,
            )
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED):
                raise Unavailable("the Payments service cannot be reached to find the Stripe customer") from error
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            raise BillingError(
                f"the Payments service refused EnsureCustomer: {details}", reason=Reason.INTERNAL
            ) from error
        return str(response.stripe_customer_id)

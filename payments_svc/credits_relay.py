"""Sending Payments' outbox to the Credits service: grants for paid payments, reversals for refunds.

Each message is one gRPC call whose `idempotency-key` is the message key, so
the relay may send it as often as it needs to: Credits applies it once. A
grant is keyed by the payment and carries the reference `payment:<id>`, so
even a grant asked for under another key cannot credit a payment twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy import Connection

from billing.common.v1.money_pb2 import Money
from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from payments_svc.repository import PaymentsRepository
from svckit.outbox import AfterSent, Handler, Message, PermanentFailure
from svckit.service_client import PERMANENT, ServiceTarget, call_metadata, channel_options

GRANT = "credits.grant"
REVERSE = "credits.reverse"
CreditsTarget = ServiceTarget


class CreditsRelay:
    """The outbox handlers that talk to Credits; the channel opens on first use, in the relay's loop."""

    def __init__(self, target: CreditsTarget, fault: Callable[[str], None] = lambda point: None) -> None:
        self.target = target
        self.fault = fault
        self._stub: credits_pb2_grpc.CreditsServiceAsyncStub | None = None

    def handlers(self) -> dict[str, Handler]:
        return {GRANT: self.grant, REVERSE: self.reverse}

    @property
    def stub(self) -> credits_pb2_grpc.CreditsServiceAsyncStub:
        if self._stub is None:
            channel = grpc.aio.insecure_channel(self.target.address, options=channel_options())
            self._stub = credits_pb2_grpc.CreditsServiceStub(channel)
        assert self._stub is not None
        return self._stub

    def _metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.target.token, "payments", key)

    async def grant(self, message: Message) -> AfterSent:
        payload = message.payload
        request = credits_pb2.GrantRequest(
            user_id=payload["user_id"],
            amount=int(payload["credits"]),
            source=credits_pb2.GRANT_SOURCE_PURCHASE,
            reference=payload["reference"],
            description=payload["description"],
        )
        if payload.get("currency"):  # messages enqueued before lots carried a value have none
            request.value.CopyFrom(Money(currency=payload["currency"], amount_minor=int(payload["value_minor"])))
        try:
            await self.stub.Grant(request, metadata=self._metadata(message.key), timeout=self.target.deadline_seconds)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.ALREADY_EXISTS:
                pass  # the payment's grant exists: the fact is recorded, which is all we need
            elif error.code() in PERMANENT:
                raise PermanentFailure(f"{error.code().name}: {error.details()}") from error
            else:
                raise
        self.fault("after-grant")
        payment_id = payload["payment_id"]
        return lambda conn: PaymentsRepository(conn).mark_granted(payment_id)

    async def reverse(self, message: Message) -> AfterSent:
        payload = message.payload
        try:
            found = await self.stub.GetTransfer(
                credits_pb2.GetTransferRequest(reference=payload["grant_reference"]),
                metadata=self._metadata(),
                timeout=self.target.deadline_seconds,
            )
            response = await self.stub.Reverse(
                credits_pb2.ReverseRequest(
                    transfer_id=found.transfer.id,
                    amount=int(payload["credits"]),
                    reference=payload["reference"],
                    reason=payload["reason"],
                    shortfall_policy=credits_pb2.SHORTFALL_POLICY_REVERSE_AVAILABLE,
                ),
                metadata=self._metadata(message.key),
                timeout=self.target.deadline_seconds,
            )
        except grpc.aio.AioRpcError as error:
            # NOT_FOUND: the grant has not landed yet; it will (it is older in the outbox).
            if error.code() in PERMANENT:
                raise PermanentFailure(f"{error.code().name}: {error.details()}") from error
            raise
        reversed_ = response.transfer.amount if response.HasField("transfer") else 0

        def record(conn: Connection) -> None:
            PaymentsRepository(conn).record_shortfall(
                reference=payload["reference"],
                payment_id=payload["payment_id"],
                user_id=payload["user_id"],
                requested=int(payload["credits"]),
                reversed_=reversed_,
                now=datetime.now(UTC),
            )

        return record

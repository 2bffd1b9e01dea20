"""Sending the Subscriptions outbox: period grants to the Credits service, notices to the mailer.

A grant is one Credits call whose `idempotency-key` is the message key
(`period-grant:<invoice>`) and whose reference is `invoice:<invoice>`: Credits
applies it once, however often it is sent. A notice is one email whose message
id is the message key: the mailer delivers it once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc

from billing.common.v1.money_pb2 import Money
from billing.credits.v1 import credits_pb2, credits_pb2_grpc
from subscriptions_svc.event_handler import GRANT, NOTIFY
from subscriptions_svc.notifications import Notice, NoticeKind, compose
from subscriptions_svc.stripe_provider import SubscriptionProvider
from svckit.errors import BillingError, Unavailable
from svckit.mail import Email, Mailer, MailRefused, MailUnavailable
from svckit.outbox import AfterSent, Handler, Message, PermanentFailure
from svckit.service_client import PERMANENT, ServiceTarget, call_metadata, channel_options

# How long period credits stay spendable when their grant reaches Credits after the period ended.
EXPIRY_GRACE = timedelta(hours=1)


class OutboxHandlers:
    def __init__(self, credits: ServiceTarget, mailer: Mailer, sender: str, provider: SubscriptionProvider) -> None:
        self.credits = credits
        self.mailer = mailer
        self.sender = sender
        self.provider = provider
        self._stub: credits_pb2_grpc.CreditsServiceAsyncStub | None = None

    def handlers(self) -> dict[str, Handler]:
        return {GRANT: self.grant, NOTIFY: self.notify}

    @property
    def stub(self) -> credits_pb2_grpc.CreditsServiceAsyncStub:
        if self._stub is None:
            self._stub = credits_pb2_grpc.CreditsServiceStub(
                grpc.aio.insecure_channel(self.credits.address, options=channel_options())
            )
        assert self._stub is not None
        return self._stub

    async def grant(self, message: Message) -> AfterSent:
        payload = message.payload
        request = credits_pb2.GrantRequest(
            user_id=payload["user_id"],
            amount=int(payload["credits"]),
            source=credits_pb2.GRANT_SOURCE_SUBSCRIPTION,
            reference=payload["reference"],
            description=payload["description"],
        )
        # Messages enqueued before lots carried terms have neither.
        if payload.get("expire_time"):
            # Credits must expire in the future: a grant sent after its period ended (an outage,
            # a re-drive) still gets EXPIRY_GRACE to be spent rather than being refused for good.
            expires = max(datetime.fromisoformat(payload["expire_time"]), datetime.now(UTC) + EXPIRY_GRACE)
            request.expire_time.FromDatetime(expires)
        if payload.get("value_minor") and payload.get("currency"):
            request.value.CopyFrom(Money(currency=payload["currency"], amount_minor=int(payload["value_minor"])))
        try:
            await self.stub.Grant(
                request,
                metadata=call_metadata(self.credits.token, "subscriptions", message.key),
                timeout=self.credits.deadline_seconds,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.ALREADY_EXISTS:
                return None  # the invoice's grant exists: that is all we need
            if error.code() in PERMANENT:
                raise PermanentFailure(f"{error.code().name}: {error.details()}") from error
            raise
        return None

    async def notify(self, message: Message) -> AfterSent:
        payload = message.payload
        notice = Notice(
            kind=NoticeKind(payload["kind"]),
            key=payload["message_id"],
            stripe_customer_id=payload["stripe_customer_id"],
            email=payload.get("email"),
            when=datetime.fromisoformat(payload["when"]) if payload.get("when") else None,
            amount_minor=payload.get("amount_minor"),
            currency=payload.get("currency"),
            link=payload.get("link"),
        )
        await asyncio.to_thread(self._send, notice, str(payload.get("plan_name") or "your plan"))
        return None

    def _send(self, notice: Notice, plan_name: str) -> None:
        to = notice.email
        if not to:
            try:
                to = self.provider.customer_email(notice.stripe_customer_id)
            except Unavailable:
                raise
            except BillingError as error:
                raise PermanentFailure(f"cannot find the customer's email: {error}") from error
        if not to:
            raise PermanentFailure(f"customer {notice.stripe_customer_id} has no email address")
        subject, text = compose(notice, plan_name)
        try:
            self.mailer.send(Email(message_id=notice.key, sender=self.sender, to=to, subject=subject, text=text))
        except MailRefused as error:
            raise PermanentFailure(str(error)) from error
        except MailUnavailable:
            raise

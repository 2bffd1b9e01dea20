"""The whole purchase path as real processes: Stripe sandbox, Credits and Payments on PostgreSQL, the gateway.

The sandbox's webhook endpoint is registered through Stripe's API (as an
operator would in Stripe's dashboard): first with a placeholder URL, to learn
its signing secret, which the gateway needs at start-up; then pointed at the
gateway once it listens.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import stripe
from sqlalchemy import Engine

from svckit import devdefaults
from svckit.db import make_engine
from tests.support.databases import postgres_database
from tests.support.gateway import GatewayProcess, bearer, refused_target
from tests.support.processes import ServiceProcess, credits_process
from tests.support.stripe_sandbox import SandboxProcess, wait_until

T = TypeVar("T")
SANDBOX_KEY = devdefaults.STRIPE_SANDBOX_KEY
WAIT_SECONDS = 30.0


DELAYED_CARD = "4000 0000 0000 1125"  # the sandbox's card that succeeds only when settled


def payments_process(database_url: str, workdir: Path, **settings: str) -> ServiceProcess:
    return ServiceProcess("payments_svc", "PAYMENTS_", database_url, workdir, ENVIRONMENT="test", **settings)


def subscriptions_process(database_url: str, workdir: Path, **settings: str) -> ServiceProcess:
    return ServiceProcess("subscriptions_svc", "SUBSCRIPTIONS_", database_url, workdir, ENVIRONMENT="test", **settings)


def wait_for(condition: Callable[[], T | None], what: str, seconds: float = WAIT_SECONDS) -> T:
    """Poll until `condition` returns something truthy; fail naming `what` after `seconds`."""
    return wait_until(condition, timeout=seconds, interval=0.05, what=what)


@dataclass
class PurchaseStack:
    workdir: Path
    sandbox: SandboxProcess
    credits: ServiceProcess
    payments: ServiceProcess
    gateway: GatewayProcess
    credits_db: str
    payments_db: str
    # With `purchase_stack(..., subscriptions=True)`: the Subscriptions service, its database, its mailbox.
    subscriptions: ServiceProcess | None
    subscriptions_db: str | None
    mailbox: Path
    webhook_endpoint_id: str
    webhook_secret: str
    stripe: stripe.StripeClient
    http: httpx.Client

    delayed_card: str = DELAYED_CARD

    def control(self, path: str, **params: str) -> dict[str, Any]:
        """The sandbox's control API (not Stripe's): POST /_sandbox/<path>."""
        return self.sandbox.control("post", f"/{path}", **params)

    @contextmanager
    def deliveries_held(self) -> Iterator[None]:
        """Hold the sandbox's webhook deliveries until `flush_deliveries`."""
        self.control("webhooks/pause")
        yield

    def flush_deliveries(self, *, order: str = "created", times: int = 1) -> None:
        self.control("webhooks/flush", order=order, copies=str(times), wait="true")
        self.control("webhooks/resume")

    def wait_deliveries_done(self) -> None:
        """Until the sandbox has no delivery held, queued or in flight (all acknowledged or given up)."""

        def idle() -> bool:
            return bool(self.sandbox.control("get", "/webhooks")["idle"])

        wait_for(idle, "the sandbox's deliveries to finish")

    def payments_engine(self) -> Engine:
        return make_engine(self.payments_db, pool_size=2)

    def as_user(self, user_id: str, roles: tuple[str, ...] = ("user",)) -> dict[str, str]:
        return bearer(user_id, roles)

    def buy(
        self,
        user_id: str,
        package_id: str = "credits-100",
        key: str | None = None,
        *,
        via: httpx.Client | None = None,
        path: str = "/api/stripe/create-checkout-session",
    ) -> dict[str, Any]:
        """Create a checkout session through the gateway, as the user's frontend would (`via` another
        client, e.g. one to the edge, at that client's `path`)."""
        response = (via or self.http).post(
            path,
            headers={**self.as_user(user_id), "Idempotency-Key": key or uuid.uuid4().hex},
            json={
                "package_id": package_id,
                "success_url": "http://127.0.0.1/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}",
                "cancel_url": "http://127.0.0.1/billing/checkout/cancel",
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def balance(self, user_id: str) -> int:
        """The wallet's balance; -1 while Credits is (re)starting and the gateway answers 503."""
        response = self.http.get("/api/credits/balance", headers=self.as_user(user_id))
        if response.status_code == 503:
            return -1
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    def payment(self, user_id: str, payment_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/payments/{payment_id}", headers=self.as_user(user_id))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def polled_payment(self, user_id: str, payment_id: str) -> dict[str, Any]:
        """The payment, or {} while Payments is (re)starting and the gateway answers 503: for `wait_for`."""
        response = self.http.get(f"/api/payments/{payment_id}", headers=self.as_user(user_id))
        if response.status_code == 503:
            return {}
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def purchase_stack(
    workdir: Path,
    *,
    payments_settings: dict[str, str] | None = None,
    subscriptions: bool = False,
    subscriptions_settings: dict[str, str] | None = None,
    sandbox_env: dict[str, str] | None = None,
    databases: Callable[[str], AbstractContextManager[str]] = postgres_database,
) -> Iterator[PurchaseStack]:
    """The purchase path; with `subscriptions`, also the Subscriptions service (plans synced, each new
    Stripe customer on a test clock of its own, notices in a development mailbox). `sandbox_env`: more
    environment for the sandbox process (e.g. SSL_CERT_FILE, to trust a test certificate). `databases`: makes
    each service's database (prefix -> SQLAlchemy URL), by default on the shared PostgreSQL server."""
    with ExitStack() as stack:
        credits_db = stack.enter_context(databases("billing_credits"))
        payments_db = stack.enter_context(databases("billing_payments"))
        mailbox = workdir / f"mailbox-{uuid.uuid4().hex[:8]}"
        # Delayed payments settle only when a test says so.
        sandbox = SandboxProcess(workdir, ASYNC_DELAY_SECONDS="3600", LOG_FORMAT="text")
        sandbox.env.update(sandbox_env or {})
        sandbox.start()
        stack.callback(sandbox.kill)
        client = sandbox.client()
        placeholder = stack.enter_context(refused_target())
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": f"http://{placeholder}/api/stripe/webhook", "enabled_events": ["*"]}
        )

        credits = credits_process(credits_db, workdir)
        credits.migrate()
        credits.start()
        stack.callback(credits.kill)

        payments = payments_process(
            payments_db,
            workdir,
            STRIPE_API_BASE=sandbox.url,
            STRIPE_SECRET_KEY=SANDBOX_KEY,
            CREDITS_TARGET=credits.target,
            OUTBOX_POLL_SECONDS="0.2",
            # A killed relay's messages are sent again once its lease ends.
            CREDITS_DEADLINE_SECONDS="2",
            OUTBOX_LEASE_SECONDS="5",
            **({"STRIPE_TEST_CLOCKS": "true"} if subscriptions else {}),
            **(payments_settings or {}),
        )
        payments.migrate()
        payments.start()
        stack.callback(payments.kill)

        subscriptions_service: ServiceProcess | None = None
        subscriptions_db: str | None = None
        if subscriptions:
            subscriptions_db = stack.enter_context(databases("billing_subscriptions"))
            subscriptions_service = subscriptions_process(
                subscriptions_db,
                workdir,
                STRIPE_API_BASE=sandbox.url,
                STRIPE_SECRET_KEY=SANDBOX_KEY,
                CREDITS_TARGET=credits.target,
                PAYMENTS_TARGET=payments.target,
                MAIL_ENDPOINT=f"file:{mailbox}",
                OUTBOX_POLL_SECONDS="0.2",
                CALL_DEADLINE_SECONDS="2",
                OUTBOX_LEASE_SECONDS="5",
                **(subscriptions_settings or {}),
            )
            subscriptions_service.migrate()
            subscriptions_service.command("sync-plans")
            subscriptions_service.start()
            stack.callback(subscriptions_service.kill)
            subscriptions_target = subscriptions_service.target
        else:
            subscriptions_target = stack.enter_context(refused_target())
        gateway = GatewayProcess(
            workdir,
            credits_target=credits.target,
            payments_target=payments.target,
            subscriptions_target=subscriptions_target,
            stripe_webhook_secrets=f'["{endpoint.secret}"]',
            allowed_redirect_origins='["http://127.0.0.1"]',
        ).start()
        stack.callback(gateway.kill)
        client.v1.webhook_endpoints.update(endpoint.id, params={"url": f"{gateway.url}/api/stripe/webhook"})
        http = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=30))
        yield PurchaseStack(
            workdir=workdir,
            sandbox=sandbox,
            credits=credits,
            payments=payments,
            gateway=gateway,
            credits_db=credits_db,
            payments_db=payments_db,
            subscriptions=subscriptions_service,
            subscriptions_db=subscriptions_db,
            mailbox=mailbox,
            webhook_endpoint_id=str(endpoint.id),
            webhook_secret=str(endpoint.secret),
            stripe=client,
            http=http,
        )


@dataclass(frozen=True)
class HostedPayment:
    paid: bool
    page: str


def pay_on_hosted_page(stack: PurchaseStack, url: str, card: str) -> HostedPayment:
    """What a customer does in a browser: open the hosted checkout page, fill the card form, submit."""
    page = stack.http.get(url)
    assert page.status_code == 200, page.text
    assert 'name="card_number"' in page.text
    submitted = stack.http.post(
        url,
        data={
            "email": "buyer@example.com",
            "card_number": card,
            "card_expiry": "12 / 34",
            "card_cvc": "123",
            "cardholder_name": "Test Buyer",
        },
        follow_redirects=False,
    )
    if submitted.status_code == 303:
        return HostedPayment(paid=True, page=submitted.headers["location"])
    return HostedPayment(paid=False, page=submitted.text)


def settle(stack: PurchaseStack, checkout_session_id: str, *, succeed: bool) -> None:
    """Finish a delayed payment now, as the bank eventually would."""
    stack.control(f"checkout/sessions/{checkout_session_id}/settle", outcome="succeeded" if succeed else "failed")

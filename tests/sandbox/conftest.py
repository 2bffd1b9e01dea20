"""One sandbox process for the session (delayed payments settle only when told), and webhook receivers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import stripe

from tests.support.stripe_sandbox import SandboxProcess, WebhookReceiver, running_receiver, running_sandbox

# Fast retries, so that a test sees several attempts in well under a second.
FAST_RETRIES = {
    "webhook_retry_base_seconds": "0.05",
    "webhook_retry_factor": "2",
    "webhook_max_attempts": "6",
    "webhook_timeout_seconds": "5",
}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), async_delay_seconds="600", **FAST_RETRIES) as running:
        yield running


@pytest.fixture
def client(sandbox: SandboxProcess) -> stripe.StripeClient:
    return sandbox.client()


@pytest.fixture
def receiver(sandbox: SandboxProcess, client: stripe.StripeClient) -> Iterator[WebhookReceiver]:
    """A receiver registered as a webhook endpoint for every event type, removed afterwards."""
    with running_receiver() as running:
        endpoint = client.v1.webhook_endpoints.create(params={"url": running.url, "enabled_events": ["*"]})
        running.secret = endpoint.secret
        try:
            yield running
        finally:
            client.v1.webhook_endpoints.delete(endpoint.id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"

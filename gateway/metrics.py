"""The gateway's Prometheus metrics: HTTP requests per route template, and Stripe webhook events.

Routes are labelled by their template (`/api/payments/{payment_id}`), never by the raw path, and every
path no route matches shares the label `unmatched`, so the number of series stays bounded. Webhook event
types are the ones the services act on (or send notices for); any other type is counted as `other`.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request

from svckit.metrics import LATENCY_BUCKETS

UNMATCHED_ROUTE = "unmatched"
OTHER_EVENT_TYPE = "other"
WebhookOutcome = Literal["accepted", "duplicate", "ignored", "invalid_signature", "invalid", "failed"]

KNOWN_EVENT_TYPES = frozenset(
    {
        "charge.failed",
        "charge.pending",
        "charge.refunded",
        "charge.succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.completed",
        "checkout.session.expired",
        "customer.subscription.created",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.marked_uncollectible",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_succeeded",
        "invoice.upcoming",
        "invoice.voided",
        "payment_intent.canceled",
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.succeeded",
    }
)


def event_type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_EVENT_TYPES else OTHER_EVENT_TYPE


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "billing_http_requests",
            "HTTP requests answered by the gateway, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "billing_http_request_duration_seconds",
            "Time the gateway took to answer, until the last body chunk, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhooks = Counter(
            "billing_webhook_events",
            "Stripe webhook deliveries, by event type (known types, else `other`) and outcome.",
            ["type", "outcome"],
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.seconds.labels(route, method).observe(seconds)

    def webhook(self, event_type: str, outcome: WebhookOutcome) -> None:
        self.webhooks.labels(event_type_label(event_type), outcome).inc()


def webhook_event(request: Request, event_type: str, outcome: WebhookOutcome) -> None:
    """Count one webhook delivery on the application's metrics (`app.state.metrics`), if it has any."""
    metrics = getattr(request.app.state, "metrics", None)
    if isinstance(metrics, GatewayMetrics):
        metrics.webhook(event_type, outcome)


def webhook_outcome(handled: bool, replayed: bool) -> WebhookOutcome:
    """A delivery the owning service answered: a replay of one recorded before, acted on, or not for it."""
    if replayed:
        return "duplicate"
    return "accepted" if handled else "ignored"

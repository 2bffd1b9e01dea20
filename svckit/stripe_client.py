"""Stripe for every service: one `StripeClient` built from settings, and Stripe's errors in our taxonomy.

A refused request is FAILED_PRECONDITION (reason PAYMENT_PROVIDER_REJECTED, with
Stripe's code in the metadata); a network failure, rate limit or Stripe outage
is UNAVAILABLE (retry with the same idempotency key); a bad API key is INTERNAL
(an operator's problem: logged, never shown).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import stripe

from svckit.errors import BillingError, FailedPrecondition, Reason, Unavailable
from svckit.idempotency import IdempotentCall

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProviderRejected(FailedPrecondition):
    reason = Reason.PAYMENT_PROVIDER_REJECTED


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str
    api_base: str
    api_version: str
    max_network_retries: int
    timeout_seconds: float
    # The environment variable holding the key, named when Stripe refuses it.
    key_setting: str = "STRIPE_SECRET_KEY"


def derived_key(kind: str, call: IdempotentCall) -> str:
    """The Stripe idempotency key of a call: derived from the caller's, the same for every retry of it."""
    digest = hashlib.sha256(f"{call.caller}\0{call.key}\0{call.method}".encode()).hexdigest()[:40]
    return f"{kind}-{digest}"


def make_client(settings: StripeSettings) -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.secret_key,
        stripe_version=settings.api_version,
        base_addresses={"api": settings.api_base},
        max_network_retries=settings.max_network_retries,
        http_client=stripe.RequestsClient(timeout=settings.timeout_seconds),
    )


def call_stripe(request: Callable[[], T], *, key_setting: str = "the Stripe secret key") -> T:
    """Run one Stripe request; its failure as one of our errors."""
    try:
        return request()
    except stripe.CardError as error:
        raise ProviderRejected(
            f"the card was declined: {error.user_message or error.code}",
            metadata={"stripe_code": str(error.code or "")},
        ) from error
    except stripe.IdempotencyError as error:
        # Our keys are derived from the caller's: this means a key reused with other
        # parameters, which the caller's own idempotency check should have refused.
        raise BillingError(
            "Stripe refused an idempotency key reused with other parameters", reason=Reason.INTERNAL
        ) from error
    except stripe.InvalidRequestError as error:
        raise ProviderRejected(
            f"Stripe refused the request: {error.user_message or error.code or 'invalid request'}",
            metadata={"stripe_code": str(error.code or ""), "param": str(error.param or "")},
        ) from error
    except stripe.AuthenticationError as error:
        log.error("Stripe refused the API key: check %s", key_setting)
        raise BillingError("payment provider misconfigured", reason=Reason.INTERNAL) from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise Unavailable("Stripe cannot be reached right now; retry with the same idempotency key") from error
    except stripe.StripeError as error:
        raise Unavailable(f"Stripe failed ({error.http_status}); retry with the same idempotency key") from error

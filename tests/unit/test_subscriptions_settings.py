"""What the Subscriptions and Payments settings refuse at start-up: unsafe email, Stripe and clock settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from payments_svc.config import PaymentsSettings
from subscriptions_svc.config import SubscriptionsSettings
from svckit.mail import check_endpoint

STRONG = {name: SecretStr(f"{name}-token-{'x' * 40}") for name in ("gateway", "payments", "subscriptions")}


def production(**changes: Any) -> SubscriptionsSettings:
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://db/subscriptions",
        "service_tokens": STRONG,
        "stripe_secret_key": SecretStr("sk_live_" + "k" * 40),
        "stripe_api_base": "https://api.stripe.com",
        "credits_token": SecretStr("c" * 48),
        "payments_token": SecretStr("p" * 48),
        "mail_endpoint": "https://mail.example.com/v1/send",
        "mail_token": SecretStr("m" * 48),
    }
    values.update(changes)
    return SubscriptionsSettings(**values)


def test_a_complete_production_configuration_is_accepted() -> None:
    assert production().mail_endpoint == "https://mail.example.com/v1/send"


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("file:var/mailbox", "development mailbox"),
        ("http://mail.example.com/send", "https://"),
        ("https://localhost:8025/send", "local address"),
        ("smtp://mail.example.com", "https://"),
    ],
)
def test_production_refuses_any_mail_endpoint_but_a_remote_https_api(endpoint: str, why: str) -> None:
    with pytest.raises(ValidationError, match="SUBSCRIPTIONS_MAIL_ENDPOINT") as refused:
        production(mail_endpoint=endpoint)
    assert why in str(refused.value)


def test_production_needs_a_mail_token_and_real_credentials() -> None:
    with pytest.raises(ValidationError, match="MAIL_TOKEN"):
        production(mail_token=SecretStr(""))
    with pytest.raises(ValidationError, match="CREDITS_TOKEN is a public development default"):
        production(credits_token=SecretStr("dev-only-subscriptions-token"))
    with pytest.raises(ValidationError, match="sandbox"):
        production(stripe_secret_key=SecretStr("sk_test_sandbox"), stripe_api_base="http://127.0.0.1:12111")


def test_development_may_use_a_mailbox_directory() -> None:
    assert check_endpoint("file:var/mailbox", production=False) is None
    assert check_endpoint("http://127.0.0.1:8025", production=False) is not None


def test_test_clocks_are_for_test_mode_only() -> None:
    assert PaymentsSettings(stripe_test_clocks=True).stripe_test_clocks
    with pytest.raises(ValidationError, match="STRIPE_TEST_CLOCKS"):
        PaymentsSettings(
            stripe_test_clocks=True,
            stripe_secret_key=SecretStr("sk_live_" + "k" * 40),
            stripe_api_base="https://api.stripe.com",
        )

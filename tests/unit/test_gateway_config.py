"""Gateway settings: defaults for a local run, and refusals that keep production safe."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from gateway.__main__ import ENV_PREFIX
from gateway.config import GatewaySettings
from svckit import devdefaults
from svckit.settings import describe_errors

STRONG = "s" * 40
OTHER_STRONG = "t" * 40


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def test_defaults_run_locally() -> None:
    settings = GatewaySettings()
    assert settings.port == devdefaults.GATEWAY_PORT
    assert settings.credits_target == f"127.0.0.1:{devdefaults.CREDITS_PORT}"
    assert settings.jwt_key() == devdefaults.JWT_SECRET
    assert settings.service_token.get_secret_value() == devdefaults.GATEWAY_TOKEN


def test_settings_come_from_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "0")
    monkeypatch.setenv("GATEWAY_CREDITS_TARGET", "credits.billing.svc:50051")
    monkeypatch.setenv("GATEWAY_GRPC_DEADLINE_SECONDS", "2.5")
    settings = GatewaySettings()
    assert (settings.port, settings.credits_target, settings.grpc_deadline_seconds) == (
        0,
        "credits.billing.svc:50051",
        2.5,
    )


@pytest.mark.parametrize("target", ["localhost", ":50051", "host:", "host:port", "host:70000"])
def test_targets_must_be_host_and_port(target: str) -> None:
    with pytest.raises(ValidationError, match="credits_target"):
        GatewaySettings(credits_target=target)


@pytest.mark.parametrize(
    "overrides",
    [
        {"service_token": STRONG},  # the JWT secret is still the public default
        {"jwt_secret": STRONG},  # the service token is still the public default
        {"service_token": STRONG, "jwt_secret": "short-but-not-public"},
        {"service_token": "short-but-not-public", "jwt_secret": STRONG},
        {"service_token": STRONG, "jwt_secret": devdefaults.GATEWAY_TOKEN},
    ],
)
def test_production_refuses_public_or_short_secrets(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(environment="production", **overrides)


WEBHOOK_SECRET = "whsec_" + "w" * 40


def test_production_accepts_its_own_strong_secrets() -> None:
    settings = GatewaySettings(
        environment="production",
        service_token=STRONG,
        jwt_secret=OTHER_STRONG,
        stripe_webhook_secrets=[WEBHOOK_SECRET],
    )
    assert settings.jwt_key() == OTHER_STRONG


def test_production_refuses_the_development_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRETS"):
        GatewaySettings(environment="production", service_token=STRONG, jwt_secret=OTHER_STRONG)


def test_webhook_secrets_are_stripe_secrets_and_origins_are_origins() -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        GatewaySettings(stripe_webhook_secrets=["not-a-secret"])
    with pytest.raises(ValidationError, match="origin"):
        GatewaySettings(allowed_redirect_origins=["https://app.example.com/path"])
    assert GatewaySettings(allowed_redirect_origins=["https://app.example.com/"]).allowed_redirect_origins == [
        "https://app.example.com"
    ]


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rs256_needs_an_rsa_public_key() -> None:
    with pytest.raises(ValidationError, match="JWT_PUBLIC_KEY"):
        GatewaySettings(jwt_algorithm="RS256")
    with pytest.raises(ValidationError, match="not a PEM public key"):
        GatewaySettings(jwt_algorithm="RS256", jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(ValidationError, match="RSA"):
        GatewaySettings(jwt_algorithm="RS256", jwt_public_key=_public_pem(ec.generate_private_key(ec.SECP256R1())))
    pem = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert GatewaySettings(jwt_algorithm="RS256", jwt_public_key=pem).jwt_key() == pem


def test_production_with_rs256_does_not_need_a_jwt_secret() -> None:
    pem = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    settings = GatewaySettings(
        environment="production",
        service_token=STRONG,
        jwt_algorithm="RS256",
        jwt_public_key=pem,
        stripe_webhook_secrets=[WEBHOOK_SECRET],
    )
    assert settings.jwt_algorithm == "RS256"


def test_the_start_up_message_names_the_variable_and_never_the_value() -> None:
    with pytest.raises(ValidationError) as raised:
        GatewaySettings(environment="production", service_token=STRONG, jwt_secret="tooshort-secret-value")
    message = describe_errors(raised.value, ENV_PREFIX)
    assert "GATEWAY_JWT_SECRET" in message
    assert "tooshort-secret-value" not in message
    assert STRONG not in message
    with pytest.raises(ValidationError) as raised:
        GatewaySettings(port=70000)
    assert "GATEWAY_PORT" in describe_errors(raised.value, ENV_PREFIX)

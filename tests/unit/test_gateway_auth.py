"""JWT verification and the access rules built on it."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import InvalidToken, Principal, Role, TokenVerifier, authenticate, bearer_token
from gateway.dev_tokens import mint_token
from gateway.problems import Problem

SECRET = "unit-test-secret-of-at-least-32-bytes!!"
OTHER_SECRET = "another-secret-also-at-least-32-bytes!!"
ISSUER = "https://id.example.test"
AUDIENCE = "billing-api"


def verifier(**overrides: object) -> TokenVerifier:
    settings: dict[str, object] = {
        "algorithm": "HS256",
        "key": SECRET,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "leeway_seconds": 0,
    }
    settings.update(overrides)
    return TokenVerifier(**settings)


def token(user_id: str = "alice", roles: tuple[str, ...] = ("user",), ttl: int = 300, **overrides: str) -> str:
    return mint_token(
        overrides.get("secret", SECRET),
        overrides.get("issuer", ISSUER),
        overrides.get("audience", AUDIENCE),
        user_id,
        roles,
        ttl,
    )


def test_a_good_token_gives_the_subject_and_roles() -> None:
    principal = verifier().verify(token("alice", ("user", "admin")))
    assert principal == Principal("alice", frozenset({Role.USER, Role.ADMIN}))
    assert principal.is_admin
    assert principal.actor == "admin:alice"


def test_a_user_acts_as_user() -> None:
    principal = verifier().verify(token("bob", ("user",)))
    assert not principal.is_admin
    assert principal.actor == "user:bob"


def test_unknown_roles_are_ignored() -> None:
    assert verifier().verify(token("bob", ("user", "superuser"))).roles == {Role.USER}


def test_an_expired_token_is_refused() -> None:
    with pytest.raises(InvalidToken, match="expired"):
        verifier().verify(token(ttl=-60))


def test_leeway_tolerates_small_clock_skew_only() -> None:
    just_expired = token(ttl=-5)
    assert verifier(leeway_seconds=30).verify(just_expired).user_id == "alice"
    with pytest.raises(InvalidToken, match="expired"):
        verifier(leeway_seconds=1).verify(just_expired)


def test_a_token_from_another_issuer_is_refused() -> None:
    with pytest.raises(InvalidToken, match="issuer"):
        verifier().verify(token(issuer="https://evil.example.test"))


def test_a_token_for_another_audience_is_refused() -> None:
    with pytest.raises(InvalidToken, match="audience"):
        verifier().verify(token(audience="some-other-api"))


def test_a_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(InvalidToken, match="signature"):
        verifier().verify(token(secret=OTHER_SECRET))


def test_a_tampered_token_is_refused() -> None:
    header, payload, signature = token("alice").split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"alice"', b'"admin"')
    ).decode()
    with pytest.raises(InvalidToken, match="signature"):
        verifier().verify(f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "aud"])
def test_each_required_claim_must_be_present(claim: str) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300, "roles": ["user"]}
    del claims[claim]
    with pytest.raises(InvalidToken, match=f"lacks the '{claim}' claim"):
        verifier().verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_an_unsigned_token_is_refused() -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300, "roles": ["user"]}
    with pytest.raises(InvalidToken):
        verifier().verify(jwt.encode(claims, None, algorithm="none"))


@pytest.mark.parametrize("subject", ["", "has space", "x" * 129, "semi;colon"])
def test_a_subject_that_is_not_a_user_id_is_refused(subject: str) -> None:
    with pytest.raises(InvalidToken, match="subject"):
        verifier().verify(token(subject))


def test_roles_must_be_a_list_of_strings() -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300, "roles": "admin"}
    with pytest.raises(InvalidToken, match="roles"):
        verifier().verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_the_roles_claim_name_is_configurable() -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300, "groups": ["admin"]}
    principal = verifier(roles_claim="groups").verify(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert principal.is_admin


def _rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_rs256_tokens_verify_with_the_public_key_and_hs256_ones_do_not() -> None:
    private, public = _rsa_keys()
    rs = verifier(algorithm="RS256", key=public)
    signed = mint_token(private, ISSUER, AUDIENCE, "carol", ["admin"], 300, algorithm="RS256")
    assert rs.verify(signed).is_admin
    # Algorithm confusion: an HS256 token whose "secret" is the public key must not pass.
    with pytest.raises(InvalidToken):
        rs.verify(token(secret=SECRET))
    other_private, _ = _rsa_keys()
    with pytest.raises(InvalidToken, match="signature"):
        rs.verify(mint_token(other_private, ISSUER, AUDIENCE, "carol", ["admin"], 300, algorithm="RS256"))


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_requests_without_a_bearer_token_get_a_401_challenge(header: str | None) -> None:
    with pytest.raises(Problem) as raised:
        bearer_token(header)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_invalid_token_is_a_401_with_invalid_token_error() -> None:
    with pytest.raises(Problem) as raised:
        authenticate(verifier(), f"Bearer {token(ttl=-60)}")
    assert raised.value.status == 401
    assert raised.value.reason == "UNAUTHENTICATED"
    assert 'error="invalid_token"' in raised.value.headers["WWW-Authenticate"]


def test_the_scheme_is_case_insensitive() -> None:
    assert authenticate(verifier(), f"bearer {token('dave')}").user_id == "dave"


def test_users_reach_only_their_own_wallet_and_admins_anyone() -> None:
    user = Principal("alice", frozenset({Role.USER}))
    admin = Principal("root", frozenset({Role.ADMIN}))
    user.require_access_to_user("alice")
    admin.require_access_to_user("alice")
    with pytest.raises(Problem) as raised:
        user.require_access_to_user("bob")
    assert raised.value.status == 403


def test_admin_endpoints_need_the_admin_role() -> None:
    Principal("root", frozenset({Role.ADMIN})).require_admin()
    with pytest.raises(Problem) as raised:
        Principal("alice", frozenset({Role.USER})).require_admin()
    assert raised.value.status == 403


def test_a_token_without_any_known_role_reaches_nothing() -> None:
    with pytest.raises(Problem) as raised:
        Principal("alice", frozenset()).require_access_to_user("alice")
    assert raised.value.status == 403

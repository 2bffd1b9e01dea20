"""End-user authentication: JWT bearer tokens, verified with pyjwt.

A token is accepted when its signature verifies with the configured algorithm
and key (HS256 secret or RS256 public key, nothing else: no `none`, no
algorithm switching), it names the configured issuer and audience, it has not
expired (within the configured leeway), and its `sub` is a valid user id. The
roles claim (a list) gives the caller's roles; "user" and "admin" are the ones
the gateway knows, others are ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.config import GatewaySettings
from gateway.problems import Problem, Reason
from svckit.actors import ID_PATTERN

REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
REALM = "billing"


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated end user."""

    user_id: str
    roles: frozenset[Role]

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def actor(self) -> str:
        """The `x-actor` metadata the services record: `admin:<sub>` for admins, else `user:<sub>`."""
        return f"{'admin' if self.is_admin else 'user'}:{self.user_id}"

    def require_role(self) -> None:
        """Any API call needs the user or the admin role."""
        if not self.roles:
            raise Problem(403, Reason.PERMISSION_DENIED, "the token carries neither the user nor the admin role")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Problem(403, Reason.PERMISSION_DENIED, "this endpoint needs the admin role")

    def require_access_to_user(self, user_id: str, what: str = "wallet") -> None:
        """Users reach only their own wallet (or `what`); admins reach anyone's."""
        self.require_role()
        if user_id != self.user_id and not self.is_admin:
            raise Problem(403, Reason.PERMISSION_DENIED, f"a user may read only their own {what}")


class InvalidToken(Exception):
    """Why a bearer token was refused; safe to show to its bearer."""


class TokenVerifier:
    def __init__(
        self,
        *,
        algorithm: str,
        key: str,
        issuer: str,
        audience: str,
        leeway_seconds: int = 0,
        roles_claim: str = "roles",
    ) -> None:
        self.algorithm = algorithm
        self.key: Any = load_pem_public_key(key.encode()) if algorithm.startswith("RS") else key
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self.roles_claim = roles_claim

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> TokenVerifier:
        return cls(
            algorithm=settings.jwt_algorithm,
            key=settings.jwt_key(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            roles_claim=settings.roles_claim,
        )

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("the token has expired") from error
        except jwt.InvalidAudienceError as error:
            raise InvalidToken("the token is not meant for this API (audience)") from error
        except jwt.InvalidIssuerError as error:
            raise InvalidToken("the token comes from an unknown issuer") from error
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"the token lacks the {error.claim!r} claim") from error
        except jwt.InvalidTokenError as error:
            raise InvalidToken("the token is malformed or its signature does not verify") from error
        subject = claims["sub"]
        if not isinstance(subject, str) or not ID_PATTERN.match(subject):
            raise InvalidToken("the token's subject is not a valid user id")
        return Principal(user_id=subject, roles=self._roles(claims.get(self.roles_claim, [])))

    def _roles(self, value: object) -> frozenset[Role]:
        if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
            raise InvalidToken(f"the {self.roles_claim!r} claim must be a list of strings")
        known = {role.value for role in Role}
        return frozenset(Role(role) for role in value if role in known)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or a 401 problem."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("an 'Authorization: Bearer <token>' header is required", error=None)
    return token


def authenticate(verifier: TokenVerifier, authorization: str | None) -> Principal:
    try:
        return verifier.verify(bearer_token(authorization))
    except InvalidToken as error:
        raise unauthenticated(str(error), error="invalid_token") from error


def unauthenticated(detail: str, *, error: str | None) -> Problem:
    """401 with the RFC 6750 challenge."""
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}"'
    return Problem(401, Reason.UNAUTHENTICATED, detail, headers={"WWW-Authenticate": challenge})

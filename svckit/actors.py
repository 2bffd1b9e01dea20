"""Who is calling: the authenticated caller service and the actor it acts for.

`authorization: Bearer <token>` identifies the calling service (checked against
the tokens configured for this service). `x-actor` names who asked, as
`user:<id>`, `admin:<id>` or `service:<name>`; when absent the actor is the
calling service itself.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from svckit.errors import InvalidArgument, PermissionDenied, Unauthenticated

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


class ActorKind(enum.Enum):
    USER = "user"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @property
    def is_user(self) -> bool:
        return self.kind is ActorKind.USER

    def require_privileged(self, action: str) -> None:
        """Admins and services only: end users cannot do `action` themselves."""
        if self.kind is ActorKind.USER:
            raise PermissionDenied(f"a user may not {action}")

    def require_access_to_user(self, user_id: str) -> None:
        """Users reach only their own resources; admins and services reach anyone's."""
        if self.kind is ActorKind.USER and self.id != user_id:
            raise PermissionDenied("a user may act only on their own resources")


def parse_actor(value: str | None, caller: str) -> Actor:
    if not value:
        return Actor(ActorKind.SERVICE, caller)
    kind_text, sep, ident = value.partition(":")
    try:
        kind = ActorKind(kind_text)
    except ValueError:
        kind = None
    if not sep or kind is None or not ID_PATTERN.match(ident):
        raise InvalidArgument("x-actor must be user:<id>, admin:<id> or service:<name>")
    return Actor(kind, ident)


class ServiceCredentials:
    """The bearer tokens of the services allowed to call this one, by caller name."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]

    def authenticate(self, authorization: str | None) -> str:
        """The calling service's name, or Unauthenticated."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing service credential: expected 'authorization: Bearer <token>'")
        presented = token.strip().encode()
        caller = None
        # Compare against every token so the time taken does not reveal which one matched.
        for name, expected in self._tokens:
            if hmac.compare_digest(presented, expected):
                caller = name
        if caller is None:
            raise Unauthenticated("invalid service credential")
        return caller

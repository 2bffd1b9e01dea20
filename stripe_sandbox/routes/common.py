"""What several endpoints share: addresses, e-mail and URL checks, retrieve and list helpers."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from stripe_sandbox import lists
from stripe_sandbox.api import Call
from stripe_sandbox.errors import invalid
from stripe_sandbox.params import LIST_PARAMS, Field, Hash, Params, Text

Obj = dict[str, Any]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ADDRESS = Hash(
    {
        "city": Text(200),
        "country": Text(2),
        "line1": Text(200),
        "line2": Text(200),
        "postal_code": Text(20),
        "state": Text(200),
    }
)


def check_email(value: str | None, param: str) -> str | None:
    if value is not None and not EMAIL.match(value):
        raise invalid(f"Invalid email address: {value}", param=param, code="email_invalid")
    return value


def check_url(value: str | None, param: str, *, template: bool = False) -> str | None:
    """An absolute http(s) URL; with `template`, Stripe's `{CHECKOUT_SESSION_ID}` may appear in it."""
    if value is None:
        return None
    probe = value.replace("{CHECKOUT_SESSION_ID}", "x") if template else value
    parts = urlsplit(probe)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise invalid("Not a valid URL", param=param, code="url_invalid")
    return value


def check_currency(value: str, param: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise invalid(f"Invalid currency: {value}. Stripe currencies are three-letter ISO codes.", param=param)
    return value.lower()


def list_params(extra: Mapping[str, Field] | None = None) -> Params:
    return Params({**LIST_PARAMS, **(extra or {})})


def retrieve(kind: str) -> Callable[[Call], Obj]:
    def handler(call: Call) -> Obj:
        return call.sandbox.store.require(kind, call.path["id"])

    return handler


def listing(kind: str, url: str, keep: Callable[[Obj, Mapping[str, Any]], bool] | None = None) -> Callable[[Call], Obj]:
    def handler(call: Call) -> Obj:
        items = call.sandbox.store.all(kind)
        if keep is not None:
            items = [item for item in items if keep(item, call.params)]
        return lists.page(items, call.params, url, kind)

    return handler


def matches(params: Mapping[str, Any], name: str, value: Any) -> bool:
    """A list filter: no filter given, or the object's value equals it."""
    wanted = params.get(name)
    return wanted is None or wanted == value

"""Stripe's errors: `{"error": {"type", "code", "message", "param", "doc_url"}}` with Stripe's status codes.

The `stripe` library picks its exception class from the status and the type:
400/404 invalid_request_error -> InvalidRequestError, 400/409 idempotency_error ->
IdempotencyError, 401 -> AuthenticationError, 402 card_error -> CardError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/{}"


class StripeApiError(Exception):
    """An error answered in Stripe's shape; raised anywhere below a route, rendered by the API layer."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = DOC_URL.format(self.code.replace("_", "-"))
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": dict(sorted(error.items()))}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeApiError:
    return StripeApiError(message, param=param, code=code)


def missing(param: str) -> StripeApiError:
    return StripeApiError(f"Missing required param: {param}.", param=param, code="parameter_missing")


def unknown_parameter(param: str) -> StripeApiError:
    return StripeApiError(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def resource_missing(kind: str, object_id: str, *, param: str = "id") -> StripeApiError:
    return StripeApiError(
        f"No such {kind}: '{object_id}'", status=404 if param == "id" else 400, param=param, code="resource_missing"
    )


def unexpected_state(message: str, *, code: str, extra: Mapping[str, Any] | None = None) -> StripeApiError:
    return StripeApiError(message, code=code, extra=extra)


def unrecognized_url(method: str, path: str) -> StripeApiError:
    return StripeApiError(
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        status=404,
    )


def no_api_key() -> StripeApiError:
    return StripeApiError(
        "You did not provide an API key. You need to provide your API key in the Authorization header, "
        "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
        "See https://stripe.com/docs/api#authentication for details.",
        status=401,
    )


def invalid_api_key(key: str) -> StripeApiError:
    shown = f"{key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}" if len(key) > 12 else "*" * len(key)
    return StripeApiError(f"Invalid API Key provided: {shown}", status=401, code="api_key_invalid")


def idempotency_in_flight(key: str) -> StripeApiError:
    return StripeApiError(
        "There is currently another in-progress request using this idempotent key (that probably means you "
        f"submitted twice, and the other request is still going through): {key}. Please try again later.",
        status=409,
        type="idempotency_error",
    )


def idempotency_reused(key: str, what: str) -> StripeApiError:
    return StripeApiError(
        f"Keys for idempotent requests can only be used with the same {what} they were first used with. "
        f"Try using a key other than '{key}' if you meant to execute a different request.",
        status=400,
        type="idempotency_error",
    )


def card_error(
    message: str, *, code: str, decline_code: str | None = None, extra: Mapping[str, Any] | None = None
) -> StripeApiError:
    details: dict[str, Any] = dict(extra or {})
    if decline_code is not None:
        details["decline_code"] = decline_code
    return StripeApiError(message, status=402, type="card_error", code=code, extra=details)

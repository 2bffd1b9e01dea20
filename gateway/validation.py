"""Reading what a request sends: JSON bodies (type, size, syntax, shape) and query parameters.

Each failure is a problem naming what is wrong: 415 for a body that is not
JSON, 413 past the size limit, 400 INVALID_JSON for bad syntax, and 400
INVALID_ARGUMENT listing every invalid field at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, from_json
from starlette.requests import Request

from gateway.problems import Problem, Reason
from gateway.schemas import FieldError

M = TypeVar("M", bound=BaseModel)

JSON_MEDIA_TYPE = "application/json"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Printable ASCII without spaces, like the services' idempotency-key metadata; short enough
# that the default grant reference "admin-grant:<key>" stays within 255 characters.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
BODY_FIELD = "body"

MESSAGES: Mapping[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown field",
}


def field_errors(error: ValidationError) -> list[FieldError]:
    return [FieldError(field=_field_name(detail), message=_message(detail)) for detail in error.errors()]


def _field_name(detail: ErrorDetails) -> str:
    return ".".join(str(part) for part in detail["loc"]) or BODY_FIELD


def _message(detail: ErrorDetails) -> str:
    return MESSAGES.get(detail["type"], detail["msg"])


def invalid(errors: list[FieldError], what: str = "request") -> Problem:
    names = ", ".join(dict.fromkeys(e.field for e in errors))
    return Problem(400, Reason.INVALID_ARGUMENT, f"invalid {what}: {names}", errors=errors)


def parse_body(raw: bytes, model: type[M]) -> M:
    """A JSON document validated strictly against `model` (no type coercion, no unknown fields)."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as error:
        syntax = next((e for e in error.errors() if e["type"] == "json_invalid"), None)
        if syntax is not None:
            why = syntax["msg"].removeprefix("Invalid JSON: ")
            raise Problem(400, Reason.INVALID_JSON, f"the request body is not valid JSON: {why}") from error
        raise invalid(field_errors(error), "request body") from error


def parse_query(query: Mapping[str, str], model: type[M]) -> M:
    try:
        return model.model_validate(dict(query))
    except ValidationError as error:
        raise invalid(field_errors(error), "query parameters") from error


def parse_path(params: Mapping[str, object], model: type[M]) -> M:
    """The path parameters, checked against `model` (a 400 naming each bad one)."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as error:
        raise invalid(field_errors(error), "path parameters") from error


def parse_one_of(raw: bytes, variants: Mapping[str, type[BaseModel]]) -> BaseModel:
    """A body of one of several shapes, told apart by which one of `variants`' keys (field names) it carries.

    Exactly one of those fields must be present: a 400 names them when none or several are.
    The chosen shape is then validated as `parse_body` does.
    """
    names = list(variants)
    try:
        document = from_json(raw)
    except ValueError:
        document = None  # parse_body below reports the syntax error
    if not isinstance(document, dict):
        return parse_body(raw, variants[names[0]])
    present = [name for name in names if name in document]
    if len(present) == 1:
        return parse_body(raw, variants[present[0]])
    choice = " or ".join(names)
    if present:
        errors = [FieldError(field=name, message=f"send only one of {choice}") for name in present]
    else:
        errors = [FieldError(field=name, message=f"required: send {choice}") for name in names]
    raise invalid(errors, "request body")


def require_json(content_type: str | None) -> None:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise Problem(415, Reason.UNSUPPORTED_MEDIA_TYPE, f"send the body as {JSON_MEDIA_TYPE}")


def too_large(limit: int) -> Problem:
    return Problem(413, Reason.CONTENT_TOO_LARGE, f"the request body exceeds {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it exceeds `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, model: type[M], limit: int) -> M:
    require_json(request.headers.get("content-type"))
    return parse_body(await read_body(request, limit), model)


async def optional_json_body(request: Request, model: type[M], limit: int) -> M:
    """Like `json_body`, but an empty body (of any or no content type) is `model`'s defaults."""
    raw = await read_body(request, limit)
    if not raw:
        return parse_body(b"{}", model)
    require_json(request.headers.get("content-type"))
    return parse_body(raw, model)


def idempotency_key(request: Request) -> str:
    """The Idempotency-Key header, required on endpoints that move credits."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None or not key.strip():
        raise Problem(
            400,
            Reason.IDEMPOTENCY_KEY_REQUIRED,
            f"this endpoint requires an {IDEMPOTENCY_KEY_HEADER} header (a unique value per operation, e.g. a UUID)",
        )
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise Problem(
            400,
            Reason.IDEMPOTENCY_KEY_REQUIRED,
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to 200 printable ASCII characters without spaces",
            errors=[FieldError(field=IDEMPOTENCY_KEY_HEADER, message="1 to 200 printable ASCII characters")],
        )
    return key

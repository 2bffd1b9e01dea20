"""Opaque page tokens: what a list call needs to resume, base64-encoded, validated on the way back."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from svckit.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
T = TypeVar("T")


def encode_page_token(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, *, field: str = "page_token") -> dict[str, Any]:
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if isinstance(position, dict):
        return position
    raise InvalidArgument.from_violations([FieldViolation(field, "not a page token this service issued")])


def decode_int_position(token: str, key: str, *, field: str = "page_token") -> int | None:
    """The integer `key` of a page token, or None for the first page."""
    value = decode_page_token(token, field=field).get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InvalidArgument.from_violations([FieldViolation(field, "not a page token this service issued")])


def clamp_page_size(page_size: int) -> int:
    """The number of rows a list call returns: 1 to 200, 0 meaning 50; INVALID_ARGUMENT otherwise."""
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument.from_violations(
            [FieldViolation("page_size", f"must be between 0 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")]
        )
    return page_size or DEFAULT_PAGE_SIZE


def take_page(rows: list[T], limit: int) -> tuple[list[T], T | None]:
    """A page from `limit + 1` rows read, and the row to continue after (None on the last page)."""
    page = rows[:limit]
    return page, (page[-1] if len(rows) > limit else None)


def position_token(position: tuple[datetime, str] | None) -> str:
    """The page token of a (time, id) position; empty on the last page."""
    if position is None:
        return ""
    at, ident = position
    return encode_page_token({"t": at.isoformat(), "id": ident})


def position_from_token(token: str) -> tuple[datetime, str] | None:
    position = decode_page_token(token)
    if not position:
        return None
    try:
        at, ident = datetime.fromisoformat(str(position["t"])), str(position["id"])
    except (KeyError, TypeError, ValueError):
        at, ident = None, ""
    if at is None or at.tzinfo is None or not ident:
        raise InvalidArgument.from_violations([FieldViolation("page_token", "not a page token this service issued")])
    return at.astimezone(UTC), ident

"""Request parameters checked the way Stripe checks them: names, types, enums, metadata limits.

Each endpoint declares its parameters as a mapping of name -> field; `validate`
converts the parsed form (strings, dicts, lists) into typed values or raises
Stripe's error: `parameter_unknown`, `parameter_invalid_integer`, ...

An empty string means "unset" in Stripe's API: every field turns it into None,
and updates read a present None as "clear this".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stripe_sandbox.errors import StripeApiError, invalid, missing, unknown_parameter

INTEGER = re.compile(r"-?[0-9]{1,18}")
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500


class Field(Protocol):
    def convert(self, value: Any, param: str) -> Any: ...


def _name(param: str) -> str:
    """The last part of `a[b][c]`: how Stripe names a field in its messages."""
    return param.rsplit("[", 1)[-1].rstrip("]") if "[" in param else param


@dataclass(frozen=True)
class Text:
    max_length: int = 5000

    def convert(self, value: Any, param: str) -> str | None:
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {param} must be a string", param=param)
        if value == "":
            return None
        if len(value) > self.max_length:
            raise invalid(
                f"Invalid string: {value[:20]}...; must be at most {self.max_length} characters",
                param=param,
                code="string_length_exceeds_maximum",
            )
        return value


@dataclass(frozen=True)
class Integer:
    minimum: int | None = None
    maximum: int | None = None

    def convert(self, value: Any, param: str) -> int | None:
        if value == "":
            return None
        if not isinstance(value, str) or INTEGER.fullmatch(value) is None:
            raise invalid(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
        number = int(value)
        if self.minimum is not None and number < self.minimum:
            raise invalid(
                f"This value must be greater than or equal to {self.minimum}.",
                param=param,
                code="parameter_invalid_integer",
            )
        if self.maximum is not None and number > self.maximum:
            raise invalid(
                f"This value must be less than or equal to {self.maximum}.",
                param=param,
                code="parameter_invalid_integer",
            )
        return number


@dataclass(frozen=True)
class IntegerOr:
    """An integer (a timestamp, say) or one of a few words, as `trial_end=now`."""

    words: tuple[str, ...]

    def convert(self, value: Any, param: str) -> int | str | None:
        if value in self.words:
            return str(value)
        return Integer().convert(value, param)


@dataclass(frozen=True)
class Boolean:
    def convert(self, value: Any, param: str) -> bool | None:
        if value == "":
            return None
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param=param)
        return bool(value == "true")


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def convert(self, value: Any, param: str) -> str | None:
        if value == "":
            return None
        if value not in self.values:
            options = (
                ", ".join(self.values[:-1]) + f", or {self.values[-1]}" if len(self.values) > 1 else self.values[0]
            )
            raise invalid(f"Invalid {_name(param)}: must be one of {options}", param=param)
        return str(value)


@dataclass(frozen=True)
class Hash:
    fields: Mapping[str, Field]

    def convert(self, value: Any, param: str) -> dict[str, Any] | None:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {param} must be a hash of fields", param=param)
        converted: dict[str, Any] = {}
        for key, item in value.items():
            inner = f"{param}[{key}]" if param else key
            spec = self.fields.get(key)
            if spec is None:
                raise unknown_parameter(inner)
            converted[key] = spec.convert(item, inner)
        return converted


@dataclass(frozen=True)
class Array:
    item: Field
    max_items: int = 100

    def convert(self, value: Any, param: str) -> list[Any] | None:
        if value == "":
            return None
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {param} must be a list (e.g. {param}[0]=...)", param=param)
        if len(value) > self.max_items:
            raise invalid(f"Invalid array: {param} may have at most {self.max_items} elements", param=param)
        return [self.item.convert(item, f"{param}[{index}]") for index, item in enumerate(value)]


@dataclass(frozen=True)
class Metadata:
    """A metadata update: key -> value, or key -> None to delete; the whole of it None clears everything."""

    def convert(self, value: Any, param: str) -> dict[str, str | None] | None:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid("Invalid metadata: metadata must be a hash of keys and string values", param=param)
        if len(value) > MAX_METADATA_KEYS:
            raise invalid(f"Invalid metadata: at most {MAX_METADATA_KEYS} keys are allowed", param=param)
        converted: dict[str, str | None] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                raise invalid(f"Invalid metadata: the value of {key} must be a string", param=f"{param}[{key}]")
            if len(key) > MAX_METADATA_KEY_LENGTH:
                raise invalid(
                    f"Metadata keys can have up to {MAX_METADATA_KEY_LENGTH} characters; {key!r} has {len(key)}.",
                    param=f"{param}[{key}]",
                )
            if len(item) > MAX_METADATA_VALUE_LENGTH:
                raise invalid(
                    f"Metadata values can have up to {MAX_METADATA_VALUE_LENGTH} characters; {key!r} has {len(item)}.",
                    param=f"{param}[{key}]",
                )
            converted[key] = item or None
        return converted


@dataclass(frozen=True)
class Range:
    """`created=123` or `created[gte]=123&created[lt]=456`."""

    comparisons: tuple[str, ...] = ("gt", "gte", "lt", "lte")

    def convert(self, value: Any, param: str) -> dict[str, int] | None:
        if value == "":
            return None
        if isinstance(value, str):
            number = Integer().convert(value, param)
            return None if number is None else {"eq": number}
        spec = Hash({name: Integer() for name in self.comparisons})
        converted = spec.convert(value, param) or {}
        return {key: number for key, number in converted.items() if number is not None}


@dataclass(frozen=True)
class Params:
    """An endpoint's parameters; `expand[]` is always accepted."""

    fields: Mapping[str, Field] = field(default_factory=dict)

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        spec = Hash({**self.fields, "expand": Array(Text())})
        return spec.convert(dict(raw), "") or {}


LIST_PARAMS: Mapping[str, Field] = {
    "limit": Integer(minimum=1, maximum=100),
    "starting_after": Text(),
    "ending_before": Text(),
    "created": Range(),
}


def required(params: Mapping[str, Any], name: str, *, prefix: str = "") -> Any:
    value = params.get(name)
    if value is None:
        raise missing(f"{prefix}[{name}]" if prefix else name)
    return value


def exclusive(params: Mapping[str, Any], *names: str, prefix: str = "") -> None:
    given = [name for name in names if params.get(name) is not None]
    if len(given) > 1:
        shown = ", ".join(f"{prefix}[{name}]" if prefix else name for name in names)
        raise StripeApiError(
            f"You may only specify one of these parameters: {shown}.",
            code="parameters_exclusive",
            param=f"{prefix}[{given[1]}]" if prefix else given[1],
        )


def apply_metadata(current: Mapping[str, str], update: Mapping[str, str | None] | None) -> dict[str, str]:
    """The metadata after an update (None: clear all)."""
    if update is None:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_METADATA_KEYS:
        raise invalid(f"Invalid metadata: at most {MAX_METADATA_KEYS} keys are allowed", param="metadata")
    return merged

"""Stripe's bracket notation: form fields (and query strings) into nested dicts and lists.

    metadata[user_id]=u1                        {"metadata": {"user_id": "u1"}}
    line_items[0][price_data][currency]=usd     {"line_items": [{"price_data": {"currency": "usd"}}]}
    expand[]=a&expand[]=b                       {"expand": ["a", "b"]}

A container whose keys are all indexes (or `[]`) becomes a list ordered by index,
except under `metadata`, whose keys are the caller's and stay a dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from stripe_sandbox.errors import invalid

KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
PART = re.compile(r"\[([^\[\]]*)\]")
INDEX = re.compile(r"[0-9]{1,6}")
MAX_DEPTH = 8
MAX_FIELDS = 5000
KEEP_AS_DICT = frozenset({"metadata"})


class _Appended:
    """A `[]` position: a fresh element after every other one."""

    __slots__ = ("order",)

    def __init__(self, order: int) -> None:
        self.order = order


def split_key(key: str) -> list[str]:
    """`a[b][0][]` -> ["a", "b", "0", ""]; a key that is not bracket notation is one literal part."""
    match = KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *PART.findall(match.group(2))]


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[Any, Any] = {}
    appended = 0
    for count, (key, value) in enumerate(pairs):
        if count >= MAX_FIELDS:
            raise invalid(f"Too many parameters: at most {MAX_FIELDS} are accepted.")
        parts = split_key(key)
        if len(parts) > MAX_DEPTH:
            raise invalid(f"Parameter nested too deeply: {key}", param=parts[0])
        node: dict[Any, Any] = root
        for depth, part in enumerate(parts):
            name: Any = part
            if part == "" and depth > 0:
                appended += 1
                name = _Appended(appended)
            last = depth == len(parts) - 1
            if last:
                if isinstance(node.get(name), dict):
                    raise invalid(f"Invalid hash: {key} is both a hash and a value", param=_display(parts[: depth + 1]))
                node[name] = value
            else:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    raise invalid(f"Invalid hash: {key} is both a value and a hash", param=_display(parts[: depth + 1]))
                node = child
    result = _finish(root, None)
    assert isinstance(result, dict)
    return result


def parse_query(text: str) -> dict[str, Any]:
    """A form-encoded body or a query string (without `?`)."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except ValueError as error:
        raise invalid(f"Could not parse the request parameters: {error}") from error
    return parse_pairs(pairs)


def _display(parts: list[str]) -> str:
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


def _finish(node: Any, name: Any) -> Any:
    if not isinstance(node, dict):
        return node
    keys = list(node)
    is_list = (
        name not in KEEP_AS_DICT
        and bool(keys)
        and all(
            isinstance(key, _Appended) or (isinstance(key, str) and INDEX.fullmatch(key) is not None) for key in keys
        )
    )
    if is_list:

        def position(key: Any) -> tuple[int, int]:
            return (1, key.order) if isinstance(key, _Appended) else (0, int(key))

        return [_finish(node[key], None) for key in sorted(keys, key=position)]
    return {str(key) if not isinstance(key, _Appended) else "": _finish(value, key) for key, value in node.items()}

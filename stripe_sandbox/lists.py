"""Stripe's list objects and cursor pagination: newest first, `limit`, `starting_after`, `ending_before`, `created`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stripe_sandbox import objects
from stripe_sandbox.errors import resource_missing
from stripe_sandbox.store import LABELS

Obj = dict[str, Any]
DEFAULT_LIMIT = 10


def created_matches(created: int, bounds: Mapping[str, int] | None) -> bool:
    if not bounds:
        return True
    checks = {
        "eq": lambda bound: created == bound,
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    return all(checks[name](bound) for name, bound in bounds.items())


def page(
    items_oldest_first: Sequence[Obj], params: Mapping[str, Any], url: str, kind: str, *, newest_first: bool = True
) -> Obj:
    """One page of `items` (already filtered), newest first unless told, as Stripe's list object."""
    ordered = reversed(items_oldest_first) if newest_first else iter(items_oldest_first)
    items = [item for item in ordered if created_matches(item.get("created", 0), params.get("created"))]
    limit = params.get("limit") or DEFAULT_LIMIT
    ids = [item["id"] for item in items]
    if params.get("starting_after") is not None:
        cursor = params["starting_after"]
        if cursor not in ids:
            raise resource_missing(LABELS.get(kind, kind), cursor, param="starting_after")
        rest = items[ids.index(cursor) + 1 :]
        return objects.list_object(rest[:limit], url, has_more=len(rest) > limit)
    if params.get("ending_before") is not None:
        cursor = params["ending_before"]
        if cursor not in ids:
            raise resource_missing(LABELS.get(kind, kind), cursor, param="ending_before")
        before = items[: ids.index(cursor)]
        return objects.list_object(before[-limit:], url, has_more=len(before) > limit)
    return objects.list_object(items[:limit], url, has_more=len(items) > limit)

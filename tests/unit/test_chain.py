"""The hash of a chain link: canonical, sensitive to every immutable field, blind to reversed_amount."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from credits_svc.sealing import HASHED, transfer_fields
from svckit.audit_chain import HASHED as AUDIT_HASHED
from svckit.audit_chain import audit_fields
from svckit.chain import GENESIS, encode_link, link_hash

AT = datetime(2026, 12, 20, 10, 30, 15, 123456, tzinfo=UTC)
TRANSFER: dict[str, Any] = {
    "id": "tr_" + "a" * 32,
    "kind": "reversal",
    "amount": 40,
    "user_id": "alice",
    "from_account": "user:alice",
    "to_account": "system:spend",
    "source": "promotion",
    "reference": "ref-1",
    "description": "a spend",
    "reverses_transfer_id": "tr_" + "b" * 32,
    "reversed_amount": 0,
    "actor": "admin:ops",
    "created_at": AT,
}
ENTRIES = [("user:alice", -40), ("system:spend", 40)]
CHANGED: dict[str, Any] = {
    "id": "tr_" + "c" * 32,
    "kind": "spend",
    "amount": 41,
    "user_id": "bob",
    "from_account": "user:bob",
    "to_account": "system:adjustment",
    "source": None,
    "reference": "ref-2",
    "description": "a spend.",
    "reverses_transfer_id": None,
    "actor": "admin:other",
    "created_at": AT + timedelta(microseconds=1),
}


def transfer_hash(row: dict[str, Any], entries: list[tuple[str, int]] = ENTRIES, prev: str = GENESIS) -> str:
    return link_hash(prev, transfer_fields(row, entries))


def test_every_immutable_transfer_column_is_hashed() -> None:
    assert set(HASHED) == set(TRANSFER) - {"reversed_amount"}
    assert set(CHANGED) == set(HASHED)


@pytest.mark.parametrize("column", sorted(CHANGED))
def test_changing_any_hashed_field_changes_the_hash(column: str) -> None:
    assert transfer_hash({**TRANSFER, column: CHANGED[column]}) != transfer_hash(TRANSFER)


def test_reversed_amount_does_not_change_the_hash() -> None:
    assert transfer_hash({**TRANSFER, "reversed_amount": 40}) == transfer_hash(TRANSFER)


@pytest.mark.parametrize(
    "entries",
    [
        [("user:alice", -41), ("system:spend", 40)],
        [("user:alice", -40), ("system:adjustment", 40)],
        [("user:alice", -40)],
        [*ENTRIES, ("user:bob", 1)],
    ],
)
def test_changing_an_entry_changes_the_hash(entries: list[tuple[str, int]]) -> None:
    assert transfer_hash(TRANSFER, entries) != transfer_hash(TRANSFER)


def test_entry_order_as_read_does_not_matter() -> None:
    assert transfer_hash(TRANSFER, list(reversed(ENTRIES))) == transfer_hash(TRANSFER)


def test_the_previous_hash_is_chained() -> None:
    assert transfer_hash(TRANSFER, prev="1" * 64) != transfer_hash(TRANSFER)


def test_the_encoding_is_canonical_json_and_the_hash_its_sha256() -> None:
    encoded = encode_link(GENESIS, {"b": 1, "a": "x\u00e9", "at": AT, "none": None})
    assert encoded == (
        b'{"prev_hash":"' + GENESIS.encode() + b'","row":{"a":"x\\u00e9","at":"2026-12-20T10:30:15.123456Z",'
        b'"b":1,"none":null}}'
    )
    assert link_hash(GENESIS, {"b": 1, "a": "x\u00e9", "at": AT, "none": None}) == hashlib.sha256(encoded).hexdigest()


def test_fields_that_look_alike_do_not_encode_alike() -> None:
    # Concatenation would make these collide; quoted JSON strings cannot.
    assert link_hash(GENESIS, {"a": "x", "b": "yz"}) != link_hash(GENESIS, {"a": "xy", "b": "z"})
    assert link_hash(GENESIS, {"a": None}) != link_hash(GENESIS, {"a": ""})
    assert link_hash(GENESIS, {"a": 1}) != link_hash(GENESIS, {"a": "1"})


def test_the_same_moment_in_another_zone_hashes_alike_and_naive_times_are_refused() -> None:
    paris = AT.astimezone(ZoneInfo("Europe/Paris"))
    assert link_hash(GENESIS, {"at": paris}) == link_hash(GENESIS, {"at": AT})
    with pytest.raises(ValueError, match="naive"):
        link_hash(GENESIS, {"at": AT.replace(tzinfo=None)})
    with pytest.raises(TypeError):
        link_hash(GENESIS, {"flag": True})


@pytest.mark.parametrize("column", AUDIT_HASHED)
def test_changing_any_audit_field_changes_the_hash(column: str) -> None:
    record: dict[str, Any] = {
        "id": "aud_1",
        "actor": "admin:a",
        "action": "credits.grant",
        "target": "user:u",
        "request_id": "r",
        "detail": "d",
        "created_at": AT,
        "ordinal": 7,
    }
    other = AT + timedelta(seconds=1) if column == "created_at" else 8 if column == "ordinal" else "changed"
    assert link_hash(GENESIS, audit_fields({**record, column: other})) != link_hash(GENESIS, audit_fields(record))

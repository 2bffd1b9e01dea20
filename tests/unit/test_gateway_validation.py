"""Request validation: strict JSON bodies naming every bad field, query parameters, headers."""

from __future__ import annotations

import json

import pytest

from gateway.problems import Problem
from gateway.schemas import GrantCreditsRequest, LedgerQuery, WalletQuery
from gateway.validation import IDEMPOTENCY_KEY_PATTERN, parse_body, parse_query, require_json


def problem_of(raw: bytes) -> Problem:
    with pytest.raises(Problem) as raised:
        parse_body(raw, GrantCreditsRequest)
    return raised.value


def fields(problem: Problem) -> list[str]:
    return [error.field for error in problem.errors]


def test_a_minimal_grant_gets_the_defaults() -> None:
    body = parse_body(b'{"user_id": "alice", "amount": 10}', GrantCreditsRequest)
    assert body == GrantCreditsRequest(user_id="alice", amount=10, source="adjustment", reference=None, description="")


def test_a_full_grant_is_accepted() -> None:
    raw = json.dumps(
        {
            "user_id": "alice@example.com",
            "amount": 1_000_000_000_000,
            "source": "promotion",
            "reference": "spring-promo:alice",
            "description": "x" * 500,
        }
    ).encode()
    body = parse_body(raw, GrantCreditsRequest)
    assert (body.amount, body.source, body.reference) == (1_000_000_000_000, "promotion", "spring-promo:alice")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "alice", "amount": "10"}, "amount"),
        ({"user_id": "alice", "amount": 10.5}, "amount"),
        ({"user_id": "alice", "amount": 10.0}, "amount"),
        ({"user_id": "alice", "amount": True}, "amount"),
        ({"user_id": "alice", "amount": None}, "amount"),
        ({"user_id": "alice", "amount": 0}, "amount"),
        ({"user_id": "alice", "amount": -1}, "amount"),
        ({"user_id": "alice", "amount": 1_000_000_000_001}, "amount"),
        ({"user_id": "alice"}, "amount"),
        ({"amount": 10}, "user_id"),
        ({"user_id": "", "amount": 10}, "user_id"),
        ({"user_id": "has space", "amount": 10}, "user_id"),
        ({"user_id": 42, "amount": 10}, "user_id"),
        ({"user_id": "alice", "amount": 10, "source": "purchase"}, "source"),
        ({"user_id": "alice", "amount": 10, "source": "ADJUSTMENT"}, "source"),
        ({"user_id": "alice", "amount": 10, "reference": ""}, "reference"),
        ({"user_id": "alice", "amount": 10, "reference": "tab\there"}, "reference"),
        ({"user_id": "alice", "amount": 10, "description": "x" * 501}, "description"),
        ({"user_id": "alice", "amount": 10, "currency": "EUR"}, "currency"),
    ],
)
def test_each_invalid_field_is_named(body: dict[str, object], field: str) -> None:
    problem = problem_of(json.dumps(body).encode())
    assert problem.status == 400
    assert problem.reason == "INVALID_ARGUMENT"
    assert fields(problem) == [field]
    assert field in problem.detail


def test_every_invalid_field_is_reported_at_once() -> None:
    problem = problem_of(b'{"amount": "ten", "source": "gift", "extra": 1}')
    assert sorted(fields(problem)) == ["amount", "extra", "source", "user_id"]
    messages = {error.field: error.message for error in problem.errors}
    assert messages["user_id"] == "required"
    assert messages["extra"] == "unknown field"


@pytest.mark.parametrize("raw", [b"", b"{", b'{"amount": 10,}', b"not json", b"\xff\xfe", b"[" * 10_000])
def test_a_body_that_is_not_json_is_invalid_json(raw: bytes) -> None:
    problem = problem_of(raw)
    assert (problem.status, problem.reason) == (400, "INVALID_JSON")


@pytest.mark.parametrize("raw", [b"[]", b"null", b"10", b'"alice"'])
def test_a_body_that_is_not_an_object_names_the_body(raw: bytes) -> None:
    problem = problem_of(raw)
    assert (problem.status, problem.reason, fields(problem)) == (400, "INVALID_ARGUMENT", ["body"])


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_content_types_are_accepted(content_type: str) -> None:
    require_json(content_type)


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "text/json"]
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(Problem) as raised:
        require_json(content_type)
    assert (raised.value.status, raised.value.reason) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_query_parameters_are_converted_and_checked() -> None:
    query = parse_query({"page_size": "25", "page_token": "abc", "user_id": "bob"}, LedgerQuery)
    assert (query.page_size, query.page_token, query.user_id) == (25, "abc", "bob")
    assert parse_query({}, LedgerQuery) == LedgerQuery()
    assert parse_query({"unrelated": "x"}, WalletQuery) == WalletQuery()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_size": "1.5"}, "page_size"),
        ({"user_id": "not valid!"}, "user_id"),
        ({"page_token": "x" * 1025}, "page_token"),
    ],
)
def test_invalid_query_parameters_are_named(query: dict[str, str], field: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_query(query, LedgerQuery)
    assert raised.value.status == 400
    assert fields(raised.value) == [field]


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("9f1c2b1e-4c9a-4a8e-9d6e-0a4f0e6b7c21", True),
        ("k", True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("has space", False),
        ("tab\t", False),
        ("caf\u00e9", False),
        ("", False),
    ],
)
def test_idempotency_keys_are_printable_ascii_up_to_200_characters(key: str, valid: bool) -> None:
    assert bool(IDEMPOTENCY_KEY_PATTERN.match(key)) is valid

"""The API's operations, and the OpenAPI 3.1 document built from them.

Each endpoint is declared once, as an `Operation`: the route Starlette serves
and everything the document says about it (parameters from the path and query
models, the request body and every response from the pydantic models in
`gateway.schemas` and its siblings, a `oneOf` where a body has several shapes,
the problem+json errors it can answer). So every served route is documented,
and the documented shapes are the validated ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.middleware import REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from gateway.problems import PROBLEM_MEDIA_TYPE
from gateway.schemas import ProblemDetails
from gateway.validation import IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PATTERN, JSON_MEDIA_TYPE

Handler = Callable[[Request], Awaitable[Response]]

OPENAPI_VERSION = "3.1.0"
API_TITLE = "Billing API"
API_VERSION = "1.0.0"
SCHEMA_REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"
OPENAPI_PATH = "/api/openapi.json"

# What each problem status means, wherever it can occur.
PROBLEM_DESCRIPTIONS: Mapping[int, str] = {
    400: "Invalid request: bad fields (listed in `errors`), invalid JSON, or a missing Idempotency-Key.",
    401: "No bearer token, or an invalid or expired one.",
    403: "The caller's roles do not allow this.",
    404: "Not found.",
    409: (
        "Conflict: the reference is already used, a request with this Idempotency-Key is still in flight, a "
        "subscription in the plan's family already exists (SUBSCRIPTION_EXISTS), or the subscription's current "
        "state, named in `detail`, does not allow the change (SUBSCRIPTION_STATE), or a Stripe event to re-drive "
        "was already processed (EVENT_NOT_REDRIVABLE)."
    ),
    413: "The request body is larger than the gateway accepts.",
    415: "The request body is not application/json.",
    422: "The Idempotency-Key was already used with a different request.",
    500: "Internal error; quote the request id.",
    503: (
        "A service is unavailable, or the plan has no Stripe price yet (PLAN_NOT_SYNCED); retry after the "
        "Retry-After seconds."
    ),
    504: "A service did not answer in time.",
}
PROBLEM_HEADERS: Mapping[int, Sequence[str]] = {
    401: ("WWW-Authenticate",),
    503: ("Retry-After",),
}
HEADERS: Mapping[str, dict[str, Any]] = {
    REQUEST_ID_HEADER: {
        "description": "The request id: the caller's X-Request-ID when well formed, else a new one.",
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request with the same key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The Bearer challenge (RFC 6750).", "schema": {"type": "string"}},
}


# One model, or several: the body is exactly one of them (a JSON Schema `oneOf`).
Models = type[BaseModel] | tuple[type[BaseModel], ...]


def _each(models: Models | None) -> tuple[type[BaseModel], ...]:
    if models is None:
        return ()
    return models if isinstance(models, tuple) else (models,)


@dataclass(frozen=True)
class Reply:
    """A successful response an operation can give."""

    status: int
    description: str
    model: Models | None = None
    schema: Mapping[str, Any] | None = None  # instead of a model
    headers: Sequence[str] = ()
    # Other media types the same status can be answered with (e.g. text/csv), each with its schema.
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    operation_id: str
    summary: str
    handler: Handler
    replies: Sequence[Reply]
    tags: Sequence[str] = ()
    description: str = ""
    authenticated: bool = True
    path_parameters: type[BaseModel] | None = None  # documents (and the handler validates) the path's {names}
    query: type[BaseModel] | None = None
    body: Models | None = None
    body_required: bool = True
    idempotency_key: bool = False
    problems: Sequence[int] = ()

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method], name=self.operation_id)


ModelKey = tuple[type[BaseModel], JsonSchemaMode]


def _schemas(operations: Sequence[Operation]) -> tuple[Mapping[Any, dict[str, Any]], dict[str, Any]]:
    """JSON Schema references to each model (keyed by model and mode), and the schemas themselves."""
    models: dict[ModelKey, None] = {(ProblemDetails, "serialization"): None}
    for op in operations:
        for body in _each(op.body):
            models[(body, "validation")] = None
        for reply in op.replies:
            for model in _each(reply.model):
                models[(model, "serialization")] = None
    refs, top = models_json_schema(list(models), ref_template=SCHEMA_REF)
    return refs, top.get("$defs", {})


def _content_schema(models: Models, mode: JsonSchemaMode, refs: Mapping[Any, dict[str, Any]]) -> dict[str, Any]:
    each = [refs[(model, mode)] for model in _each(models)]
    return each[0] if len(each) == 1 else {"oneOf": each}


def _query_parameters(model: type[BaseModel], where: Literal["query", "path"] = "query") -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation", ref_template=SCHEMA_REF)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        # A query parameter is absent rather than null.
        variants = [v for v in prop.pop("anyOf", ()) if v != {"type": "null"}]
        if variants:
            prop = {**variants[0], **prop}
        if prop.get("default") is None:
            prop.pop("default", None)
        parameters.append(
            {"name": name, "in": where, "required": name in required, "description": description, "schema": prop}
        )
    return parameters


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    names = re.findall(r"{(\w+)}", op.path)
    if op.path_parameters is not None:
        parameters = _query_parameters(op.path_parameters, "path")
        assert sorted(p["name"] for p in parameters) == sorted(names), f"{op.operation_id}: path parameters"
        return parameters
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}} for name in names
    ]


def _header_parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": REQUEST_ID_HEADER,
            "in": "header",
            "required": False,
            "description": "Correlates logs across the gateway and the services; echoed back.",
            "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern},
        }
    ]
    if op.idempotency_key:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    return parameters


def _headers(names: Sequence[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in (REQUEST_ID_HEADER, *names)}


def _responses(op: Operation, refs: Mapping[Any, dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for reply in op.replies:
        response: dict[str, Any] = {"description": reply.description, "headers": _headers(reply.headers)}
        schema = _content_schema(reply.model, "serialization", refs) if reply.model is not None else reply.schema
        if schema is not None:
            response["content"] = {JSON_MEDIA_TYPE: {"schema": schema}}
        for media_type, alternative in reply.alternatives.items():
            response.setdefault("content", {})[media_type] = {"schema": dict(alternative)}
        responses[str(reply.status)] = response
    problem = {"schema": refs[(ProblemDetails, "serialization")]}
    for status in sorted(op.problems):
        responses[str(status)] = {
            "description": PROBLEM_DESCRIPTIONS[status],
            "headers": _headers(PROBLEM_HEADERS.get(status, ())),
            "content": {PROBLEM_MEDIA_TYPE: problem},
        }
    return responses


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing `operations`."""
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "parameters": [
                *_path_parameters(op),
                *(_query_parameters(op.query) if op.query else []),
                *_header_parameters(op),
            ],
            "responses": _responses(op, refs),
            "security": [{BEARER: []}] if op.authenticated else [],
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {JSON_MEDIA_TYPE: {"schema": _content_schema(op.body, "validation", refs)}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": (
                "The billing platform's HTTP API. Errors are application/problem+json (RFC 9457) with a stable "
                "`reason` and the `request_id`. Credits are JSON integers; timestamps are ISO-8601 in UTC."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT from the identity provider: iss, aud, exp and sub are required; "
                    'the "roles" claim lists "user" and/or "admin".',
                }
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": IDEMPOTENCY_KEY_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "A unique value per operation (a UUID, say): a retry with the same key and body "
                    "gets the stored response, with the same key and another body a 422.",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN.pattern},
                }
            },
            "headers": HEADERS,
        },
    }


def openapi_operation(operations: Sequence[Operation]) -> Operation:
    """`GET /api/openapi.json`: the document of `operations` and of itself."""
    content = b""

    async def get_openapi(request: Request) -> Response:
        return Response(content, media_type=JSON_MEDIA_TYPE)

    op = Operation(
        method="GET",
        path=OPENAPI_PATH,
        operation_id="getOpenApi",
        summary="This document",
        handler=get_openapi,
        tags=("meta",),
        authenticated=False,
        replies=(Reply(200, "The OpenAPI 3.1 document.", schema={"type": "object"}),),
    )
    content = json.dumps(document([*operations, op]), separators=(",", ":")).encode()
    return op

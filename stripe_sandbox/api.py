"""Stripe's HTTP conventions, shared by every API endpoint: authentication, bracket-notation
parameters, idempotency keys, errors, `expand[]`, request ids and JSON answers.

An endpoint is a plain function of a `Call` returning the Stripe object to answer;
it runs under the sandbox lock (see sandbox.py). Control endpoints may be
coroutines: they run outside the lock and take it themselves where needed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stripe_sandbox import ids
from stripe_sandbox.errors import StripeApiError, invalid, invalid_api_key, no_api_key, unrecognized_url
from stripe_sandbox.expand import expand
from stripe_sandbox.faults import Faults
from stripe_sandbox.forms import parse_query
from stripe_sandbox.idempotency import MAX_KEY_LENGTH, IdempotencyStore, SavedResponse
from stripe_sandbox.params import Params
from stripe_sandbox.sandbox import RequestInfo, Sandbox, current_request
from svckit import logs

log = logging.getLogger("stripe_sandbox.api")
Obj = dict[str, Any]
MAX_BODY_BYTES = 1024 * 1024
JSON = "application/json"


@dataclass(frozen=True)
class Call:
    sandbox: Sandbox
    params: dict[str, Any]
    path: Mapping[str, str]
    request_id: str
    idempotency_key: str | None


Handler = Callable[[Call], Obj]
AsyncHandler = Callable[[Call], Awaitable[Obj]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler | AsyncHandler
    params: Params = field(default_factory=Params)
    # Stripe's endpoints honour idempotency keys and the faults a test injects; control endpoints do neither.
    stripe: bool = True


def render(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body, indent=2), status_code=status, media_type=JSON, headers=dict(headers or {}))


def error_response(error: StripeApiError, request_id: str) -> Response:
    return render(error.status, error.body(), {"Request-Id": request_id})


class Api:
    def __init__(self, sandbox: Sandbox, secret_key: str, idempotency: IdempotencyStore, faults: Faults) -> None:
        self.sandbox = sandbox
        self.secret_key = secret_key
        self.idempotency = idempotency
        self.faults = faults

    def routes(self, endpoints: Sequence[Endpoint]) -> list[Route]:
        return [Route(e.path, self._endpoint(e), methods=[e.method]) for e in endpoints]

    def unrecognized_route(self, prefix: str) -> Route:
        """Stripe's 404 for any other URL (and method) under `prefix`, after authentication."""

        async def unrecognized(request: Request) -> Response:
            request_id = ids.new_id("request")
            try:
                self.authenticate(request)
                raise unrecognized_url(request.method, request.url.path)
            except StripeApiError as error:
                return error_response(error, request_id)

        methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
        return Route(prefix + "/{rest:path}", unrecognized, methods=methods)

    def authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        if not key:
            raise no_api_key()
        if not hmac.compare_digest(key.encode(), self.secret_key.encode()):
            raise invalid_api_key(key)
        return key

    async def read_params(self, request: Request) -> dict[str, Any]:
        params = parse_query(request.url.query)
        if request.method in ("POST", "DELETE"):
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
            body = bytearray()
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > MAX_BODY_BYTES:
                    raise invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body and content_type not in ("", "application/x-www-form-urlencoded"):
                raise invalid(
                    f"Invalid request: the body must be form-encoded (application/x-www-form-urlencoded), "
                    f"not {content_type}."
                )
            try:
                text = bytes(body).decode("utf-8")
            except UnicodeDecodeError as error:
                raise invalid("Invalid request: the body is not UTF-8.") from error
            params.update(parse_query(text))
        return params

    def _endpoint(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            request_id = ids.new_id("request")
            logs.request_id_var.set(request_id)
            started = time.perf_counter()
            response = await self._serve(endpoint, request, request_id)
            response.headers["Request-Id"] = request_id
            response.headers["Stripe-Version"] = request.headers.get("stripe-version", self.sandbox.api_version)
            log.info(
                "request",
                extra={
                    "http_method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response

        return serve

    async def _serve(self, endpoint: Endpoint, request: Request, request_id: str) -> Response:
        method, path = request.method, request.url.path
        try:
            api_key = self.authenticate(request)
            raw = await self.read_params(request)
            key = request.headers.get("idempotency-key") if endpoint.stripe and method == "POST" else None
            if key is not None and len(key) > MAX_KEY_LENGTH:
                raise invalid(f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters.", param="Idempotency-Key")
        except StripeApiError as error:
            return error_response(error, request_id)
        if key:
            try:
                saved = self.idempotency.begin(api_key, key, f"{method} {path}", raw)
            except StripeApiError as error:
                return error_response(error, request_id)
            if saved is not None:
                headers = {**saved.headers, "Idempotent-Replayed": "true"}
                return Response(saved.body, status_code=saved.status, media_type=JSON, headers=headers)
        response: Response | None = None
        try:
            response = await self._run(endpoint, request, raw, request_id, key)
            return response
        finally:
            if key:
                self.idempotency.finish(api_key, key, self._to_save(response, request_id))

    @staticmethod
    def _to_save(response: Response | None, request_id: str) -> SavedResponse | None:
        """What Stripe keeps for an idempotency key: everything but requests that failed validation."""
        if response is None or response.status_code >= 500:
            return None
        body = bytes(response.body)
        if response.status_code >= 400:
            error = json.loads(body).get("error", {})
            if error.get("type") == "invalid_request_error":
                return None
        return SavedResponse(response.status_code, body, {"Original-Request": request_id})

    async def _run(
        self, endpoint: Endpoint, request: Request, raw: dict[str, Any], request_id: str, key: str | None
    ) -> Response:
        method, path = request.method, request.url.path
        if endpoint.stripe:
            injected = self.faults.injected_failure(method, path)
            if injected is not None:
                return error_response(injected, request_id)
            await self.faults.wait_if_held(method, path, key)
        # Events name the API request that caused them; control calls stand for the customer or for
        # time passing, which Stripe reports with a null request.
        token = current_request.set(RequestInfo(request_id, key) if endpoint.stripe else None)
        try:
            if inspect.iscoroutinefunction(endpoint.handler):
                handler = cast(AsyncHandler, endpoint.handler)
                params = endpoint.params.validate(raw)
                answer = await handler(Call(self.sandbox, params, request.path_params, request_id, key))
                return render(200, answer)
            with self.sandbox.lock:
                params = endpoint.params.validate(raw)
                result = cast(Handler, endpoint.handler)(
                    Call(self.sandbox, params, request.path_params, request_id, key)
                )
                answer = expand(self.sandbox.store, result, params.get("expand") or [])
                return render(200, answer)
        except StripeApiError as error:
            return error_response(error, request_id)
        except Exception:
            log.exception("unexpected error", extra={"path": path})
            return error_response(
                StripeApiError("An unexpected error occurred in the sandbox.", status=500, type="api_error"),
                request_id,
            )
        finally:
            current_request.reset(token)

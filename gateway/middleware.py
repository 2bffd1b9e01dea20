"""Request context around every request: the request id, the access log, the last-resort 500.

`RequestContextMiddleware` is pure ASGI and the outermost layer of the app:

- it takes the caller's `X-Request-ID` when it is well formed (`^[A-Za-z0-9_.:-]{1,128}$`)
  or makes one, puts it in `svckit.logs.request_id_var` (so every log line carries it and
  gRPC calls pass it on), and returns it in the `X-Request-ID` response header; the HTTP
  method goes to `svckit.logs.method_var`;
- it writes one access-log line per request (method, path, status, duration), just before
  the last body chunk leaves, so the line exists by the time the client has the response;
- an exception nothing else handled becomes a 500 problem with the request id and no
  detail; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import internal_error
from svckit import logs

log = logging.getLogger(__name__)
access_log = logging.getLogger("billing.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def request_id_from(supplied: str | None) -> str:
    if supplied is not None and REQUEST_ID_PATTERN.match(supplied):
        return supplied
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"x-request-id"),
            None,
        )
        request_id = request_id_from(supplied)
        tokens = (logs.request_id_var.set(request_id), logs.method_var.set(scope["method"]))
        started = time.perf_counter()
        status = 0

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                access_log.info(
                    "request",
                    extra={
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            log.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            if status:
                # The response had started: nothing sensible can follow; the server drops the connection.
                raise
            await internal_error(request_id).response(request_id)(scope, receive, send_with_context)
        finally:
            logs.request_id_var.reset(tokens[0])
            logs.method_var.reset(tokens[1])

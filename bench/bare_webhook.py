"""The baseline of bench/webhook_bench.py: a Starlette endpoint on uvicorn that only verifies a Stripe signature.

    BARE_WEBHOOK_SECRET=whsec_... python -m bench.bare_webhook

The same server stack and the same verification as the gateway's webhook
route (the raw body, `stripe.WebhookSignature.verify_header`, `json.loads`),
and nothing else: no database, no gRPC call.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from svckit.http_server import ReadyServer


def app(secret: str) -> Starlette:
    async def webhook(request: Request) -> Response:
        payload = await request.body()
        try:
            stripe.WebhookSignature.verify_header(payload, request.headers.get("stripe-signature"), secret, 300)
        except stripe.SignatureVerificationError:
            return JSONResponse({"error": "bad signature"}, status_code=400)
        event = json.loads(payload)
        return JSONResponse({"received": True, "id": event["id"]})

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def main() -> None:
    ready = os.environ.get("BARE_WEBHOOK_READY_FILE")
    config = uvicorn.Config(
        app(os.environ["BARE_WEBHOOK_SECRET"]),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        http="httptools",  # as the gateway
        loop="asyncio",
    )
    asyncio.run(ReadyServer(config, Path(ready) if ready else None).serve())


if __name__ == "__main__":
    main()

"""The pages Stripe Checkout sends a customer back to: `/billing/checkout/success` and `/billing/checkout/cancel`.

Plain HTML, no script: the payment's outcome arrives by webhook, not through
these pages, so they only tell the customer what happens next.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.openapi import Operation, Reply

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>{title}</h1><p>{text}</p></body></html>
"""


def _page(title: str, text: str) -> Response:
    return HTMLResponse(PAGE.format(title=html.escape(title), text=html.escape(text)))


def operations() -> list[Operation]:
    async def success(request: Request) -> Response:
        return _page(
            "Payment received",
            "Thank you. Your credits are added to your balance as soon as Stripe confirms the payment, "
            "usually within seconds. You can close this page.",
        )

    async def cancel(request: Request) -> Response:
        return _page("Payment canceled", "Nothing was charged. You can close this page.")

    return [
        Operation(
            method="GET",
            path="/billing/checkout/success",
            operation_id="checkoutSuccessPage",
            summary="Where Checkout sends a customer who paid",
            tags=("pages",),
            handler=success,
            authenticated=False,
            replies=(Reply(200, "An HTML page."),),
        ),
        Operation(
            method="GET",
            path="/billing/checkout/cancel",
            operation_id="checkoutCancelPage",
            summary="Where Checkout sends a customer who gave up",
            tags=("pages",),
            handler=cancel,
            authenticated=False,
            replies=(Reply(200, "An HTML page."),),
        ),
    ]

"""The HTML pages: the billing page (`/billing`), the admin dashboard (`/admin`), their static assets
(`/web/...`), and the pages Stripe Checkout sends a customer back to (`/billing/checkout/success|cancel`).

The billing and admin pages are static shells: plain ES modules under `gateway/web/` read a bearer token
from the URL fragment and call the REST API with it, so the pages themselves need no authentication and
hold no data. Every asset is read once, when the routes are built, into an in-memory table keyed by its
path: a request can only name a file that is in the table, never a path on disk.

Every page and asset is served with a strict Content-Security-Policy: scripts, styles and fetches only
from this origin, plus Stripe.js (`https://js.stripe.com`) and the Stripe API for Elements; no inline
script or style, no plugins, no framing.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.openapi import Operation, Reply
from gateway.problems import Problem, Reason

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
WEB_PREFIX = "/web"

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The assets a page may load: everything under gateway/web/ with one of these suffixes, except the pages.
ASSET_SUFFIXES = frozenset({".js", ".css", ".svg"})

STRIPE_JS = "https://js.stripe.com"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src 'self' {STRIPE_JS}",
        "style-src 'self'",
        "img-src 'self' data: https://*.stripe.com",
        "font-src 'self'",
        "connect-src 'self' https://api.stripe.com",
        f"frame-src {STRIPE_JS} https://hooks.stripe.com",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

RETURN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>{title}</h1><p>{text}</p></body></html>
"""
PAGE_PROBLEMS = (404,)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_web_files(root: Path = WEB_ROOT) -> dict[str, StaticFile]:
    """Every page and asset under `root`, keyed by its path relative to `root` (e.g. `lib/money.js`)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or content_type is None or any(part.startswith(".") for part in path.parts):
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.relative_to(root).as_posix()] = StaticFile(body, content_type, etag)
    return files


def _served(request: Request, file: StaticFile) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": file.etag, "Cache-Control": "no-cache"}
    if file.etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(file.body, headers=headers, media_type=file.content_type)


AssetName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(js|css|svg)$", max_length=128)]
FolderName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class RootAssetPath(BaseModel):
    """`/web/{asset}`: a file at the top of the front-end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: AssetName = Field(description="The file's name, e.g. `billing.js`.")


class FolderAssetPath(BaseModel):
    """`/web/{folder}/{asset}`: a file in one of the front-end's folders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: FolderName = Field(description="`components`, `hooks`, `lib`, `services`, `styles` or `types`.")
    asset: AssetName = Field(description="The file's name, e.g. `modal.js`.")


def _return_page(title: str, text: str) -> Response:
    return HTMLResponse(RETURN_PAGE.format(title=html.escape(title), text=html.escape(text)))


def operations(web_root: Path = WEB_ROOT) -> list[Operation]:
    files = load_web_files(web_root)

    def file_named(name: str) -> StaticFile:
        found = files.get(name)
        if found is None or Path(name).suffix not in ASSET_SUFFIXES:
            raise Problem(404, Reason.NOT_FOUND, "no such file")
        return found

    def page(name: str) -> StaticFile:
        found = files.get(name)
        if found is None:
            raise Problem(404, Reason.NOT_FOUND, f"the page {name} is not installed")
        return found

    async def billing_page(request: Request) -> Response:
        return _served(request, page("billing.html"))

    async def admin_page(request: Request) -> Response:
        return _served(request, page("admin.html"))

    async def root_asset(request: Request) -> Response:
        return _served(request, file_named(str(request.path_params["asset"])))

    async def folder_asset(request: Request) -> Response:
        name = f"{request.path_params['folder']}/{request.path_params['asset']}"
        return _served(request, file_named(name))

    async def success(request: Request) -> Response:
        return _return_page(
            "Payment received",
            "Thank you. Your credits are added to your balance as soon as Stripe confirms the payment, "
            "usually within seconds. You can close this page.",
        )

    async def cancel(request: Request) -> Response:
        return _return_page("Payment canceled", "Nothing was charged. You can close this page.")

    page_description = (
        "A static page; it reads the bearer token from the URL fragment (`#token=<JWT>`), keeps it in "
        "sessionStorage and calls the REST API with it. Served with a strict Content-Security-Policy."
    )
    return [
        Operation(
            method="GET",
            path="/billing",
            operation_id="billingPage",
            summary="The user's billing page: balance, credit packages, subscriptions, payments",
            description=page_description,
            tags=("pages",),
            handler=billing_page,
            authenticated=False,
            replies=(Reply(200, "An HTML page."),),
            problems=PAGE_PROBLEMS,
        ),
        Operation(
            method="GET",
            path="/admin",
            operation_id="adminPage",
            summary="The admin financial dashboard (its data comes only from the admin endpoints)",
            description=page_description,
            tags=("pages",),
            handler=admin_page,
            authenticated=False,
            replies=(Reply(200, "An HTML page."),),
            problems=PAGE_PROBLEMS,
        ),
        Operation(
            method="GET",
            path=WEB_PREFIX + "/{asset}",
            operation_id="webAsset",
            summary="A static file of the pages (script, style sheet or image)",
            tags=("pages",),
            handler=root_asset,
            authenticated=False,
            path_parameters=RootAssetPath,
            replies=(Reply(200, "The file, with its content type; 304 when the If-None-Match ETag matches."),),
            problems=PAGE_PROBLEMS,
        ),
        Operation(
            method="GET",
            path=WEB_PREFIX + "/{folder}/{asset}",
            operation_id="webFolderAsset",
            summary="A static file in one of the pages' folders",
            tags=("pages",),
            handler=folder_asset,
            authenticated=False,
            path_parameters=FolderAssetPath,
            replies=(Reply(200, "The file, with its content type; 304 when the If-None-Match ETag matches."),),
            problems=PAGE_PROBLEMS,
        ),
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

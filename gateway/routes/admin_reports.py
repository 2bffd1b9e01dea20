"""Admin reports under `/api/admin/`: the financial dashboard, lists with filters, paging and CSV export,
webhook events with re-drive, and the audit log. Every one needs the admin role.

The dashboard asks the three services at once, each call with the gateway's
deadline; a service that fails or does not answer in time leaves its part null
and is named in `missing`: a partial answer, not an error.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from billing.credits.v1 import credits_pb2
from billing.payments.v1 import payments_pb2
from billing.subscriptions.v1 import subscriptions_pb2
from gateway.admin_schemas import (
    STATUS_VALUES,
    TRANSACTION_KINDS,
    TRANSFER_KINDS,
    AdminSubscriptionsQuery,
    AuditPage,
    AuditQuery,
    AuditRecord,
    CreditFigures,
    CreditLiability,
    DateRange,
    FinancialDashboard,
    RangeBody,
    RedrivePath,
    Revenue,
    SubscriptionFigures,
    TimedListQuery,
    Transaction,
    TransactionsPage,
    TransactionsQuery,
    TransfersQuery,
    WebhookEvent,
    WebhookEventRedriven,
    WebhookEventsPage,
    WebhookEventsQuery,
    stamp,
)
from gateway.auth import Principal, TokenVerifier
from gateway.grpc_clients import Backends
from gateway.openapi import Operation, Reply
from gateway.problems import Problem
from gateway.routes.admin import REPLAYED_HEADER
from gateway.routes.common import caller, json_response, principal
from gateway.schemas import Body, Transfer
from gateway.subscription_schemas import Subscription, SubscriptionsPage
from gateway.validation import idempotency_key, parse_path, parse_query

log = logging.getLogger(__name__)
T = TypeVar("T")
LIST_PROBLEMS = (400, 401, 403, 500, 503, 504)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_DOCUMENTED_TYPE = "text/csv"


class TransfersPage(Body):
    transfers: list[Transfer]
    next_page_token: str | None


def flatten(item: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One CSV row: nested objects become dotted columns (`amount.currency`)."""
    row: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, Mapping):
            row.update(flatten(value, f"{prefix}{key}."))
        else:
            row[f"{prefix}{key}"] = "" if value is None else value
    return row


def csv_response(items: Sequence[BaseModel], columns: Sequence[str], filename: str, next_token: str | None) -> Response:
    """The page as CSV, with a header row; the next page's token travels in the `Next-Page-Token` header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow(flatten(item.model_dump(mode="json")))
    headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
    if next_token:
        headers["Next-Page-Token"] = next_token
    return Response(out.getvalue(), media_type=CSV_MEDIA_TYPE, headers=headers)


def columns_of(model: type[BaseModel]) -> list[str]:
    """The CSV columns of a list item, in field order, nested models expanded."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(f"{name}.{inner}" for inner in columns_of(annotation))
        else:
            names.append(name)
    return names


def page(
    items: Sequence[BaseModel], query: Any, body: BaseModel, filename: str, item: type[BaseModel], token: str
) -> Response:
    if query.format == "csv":
        return csv_response(items, columns_of(item), filename, token or None)
    return json_response(body)


def timed(query: TimedListQuery) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if query.since is not None:
        fields["since"] = stamp(query.since)
    if query.until is not None:
        fields["until"] = stamp(query.until)
    return fields


def operations(backends: Backends, verifier: TokenVerifier) -> list[Operation]:
    def admin(request: Request) -> Principal:
        who = principal(request, verifier)
        who.require_admin()
        return who

    async def part(name: str, fetch: Awaitable[T], missing: list[str]) -> T | None:
        """One service's figures, or None (and its name in `missing`) when it fails or is too slow."""
        try:
            return await fetch
        except Problem as problem:
            if problem.status < 500:
                raise
            log.warning("dashboard: %s did not answer (%s)", name, problem.reason)
            missing.append(name)
            return None

    async def dashboard(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, DateRange)
        since, until = query.bounds()
        window = {"since": stamp(since), "until": stamp(until)}
        missing: list[str] = []
        by = caller(who)
        revenue, subs, credits, liability = await asyncio.gather(
            part(
                "payments",
                backends.call(backends.payments.GetRevenueSummary, payments_pb2.GetRevenueSummaryRequest(**window), by),
                missing,
            ),
            part(
                "subscriptions",
                backends.call(
                    backends.subscriptions.GetSubscriptionMetrics,
                    subscriptions_pb2.GetSubscriptionMetricsRequest(**window),
                    by,
                ),
                missing,
            ),
            part(
                "credits",
                backends.call(backends.credits.GetCreditTotals, credits_pb2.GetCreditTotalsRequest(**window), by),
                missing,
            ),
            part(
                "credits",
                backends.call(backends.credits.GetLiability, credits_pb2.GetLiabilityRequest(), by),
                missing,
            ),
        )
        body = FinancialDashboard(
            range=RangeBody(since=since.date().isoformat(), until=until.date().isoformat()),
            revenue=Revenue.from_pb(revenue.message) if revenue else None,
            subscriptions=SubscriptionFigures.from_pb(subs.message) if subs else None,
            credits=CreditFigures.from_pb(credits.message) if credits else None,
            liability=CreditLiability.from_pb(liability.message) if liability else None,
            missing=sorted(set(missing)),  # type: ignore[arg-type]
        )
        return json_response(body)

    async def transactions(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, TransactionsQuery)
        grpc_request = payments_pb2.ListTransactionsRequest(
            user_id=query.user_id or "",
            kind=TRANSACTION_KINDS[query.kind] if query.kind else payments_pb2.TRANSACTION_KIND_UNSPECIFIED,
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
            **timed(query),
        )
        reply = await backends.call(backends.payments.ListTransactions, grpc_request, caller(who))
        items = [Transaction.from_pb(t) for t in reply.message.transactions]
        token = reply.message.next_page_token
        body = TransactionsPage(transactions=items, next_page_token=token or None)
        return page(items, query, body, "transactions", Transaction, token)

    async def subscriptions(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, AdminSubscriptionsQuery)
        grpc_request = subscriptions_pb2.ListSubscriptionsRequest(
            status=STATUS_VALUES[query.status] if query.status else subscriptions_pb2.SUBSCRIPTION_STATUS_UNSPECIFIED,
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
        )
        reply = await backends.call(backends.subscriptions.ListSubscriptions, grpc_request, caller(who))
        items = [Subscription.from_pb(s) for s in reply.message.subscriptions]
        token = reply.message.next_page_token
        body = SubscriptionsPage(subscriptions=items, next_page_token=token or None)
        return page(items, query, body, "subscriptions", Subscription, token)

    async def transfers(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, TransfersQuery)
        grpc_request = credits_pb2.ListTransfersRequest(
            user_id=query.user_id or "",
            kind=TRANSFER_KINDS[query.kind] if query.kind else credits_pb2.TRANSFER_KIND_UNSPECIFIED,
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
            **timed(query),
        )
        reply = await backends.call(backends.credits.ListTransfers, grpc_request, caller(who))
        items = [Transfer.from_pb(t) for t in reply.message.transfers]
        token = reply.message.next_page_token
        body = TransfersPage(transfers=items, next_page_token=token or None)
        return page(items, query, body, "transfers", Transfer, token)

    def events_stub(service: str) -> Any:
        return backends.payments if service == "payments" else backends.subscriptions

    def events_pb(service: str) -> Any:
        return payments_pb2 if service == "payments" else subscriptions_pb2

    async def webhook_events(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, WebhookEventsQuery)
        grpc_request = events_pb(query.service).ListStripeEventsRequest(
            status=query.status or "",
            type=query.type or "",
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
        )
        reply = await backends.call(events_stub(query.service).ListStripeEvents, grpc_request, caller(who))
        items = [WebhookEvent.from_pb(query.service, e) for e in reply.message.events]
        token = reply.message.next_page_token
        body = WebhookEventsPage(events=items, next_page_token=token or None)
        return page(items, query, body, "webhook-events", WebhookEvent, token)

    async def redrive(request: Request) -> Response:
        who = admin(request)
        path = parse_path(request.path_params, RedrivePath)
        key = idempotency_key(request)
        grpc_request = events_pb(path.service).RedriveStripeEventRequest(event_id=path.event_id)
        reply = await backends.call(events_stub(path.service).RedriveStripeEvent, grpc_request, caller(who, key))
        body = WebhookEventRedriven(event=WebhookEvent.from_pb(path.service, reply.message.event))
        return json_response(body, headers={REPLAYED_HEADER: "true"} if reply.replayed else {})

    async def audit_log(request: Request) -> Response:
        who = admin(request)
        query = parse_query(request.query_params, AuditQuery)
        stubs: dict[str, tuple[Any, Any]] = {
            "credits": (backends.credits, credits_pb2),
            "payments": (backends.payments, payments_pb2),
            "subscriptions": (backends.subscriptions, subscriptions_pb2),
        }
        stub, module = stubs[query.service]
        grpc_request = module.ListAuditRecordsRequest(
            actor=query.actor or "",
            action=query.action or "",
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
            **timed(query),
        )
        reply = await backends.call(stub.ListAuditRecords, grpc_request, caller(who))
        items = [AuditRecord.from_pb(r) for r in reply.message.records]
        token = reply.message.next_page_token
        body = AuditPage(records=items, next_page_token=token or None)
        return page(items, query, body, "audit-log", AuditRecord, token)

    def listing(
        path: str,
        operation_id: str,
        summary: str,
        handler: Callable[[Request], Awaitable[Response]],
        query: type,
        reply: type,
    ) -> Operation:
        return Operation(
            method="GET",
            path=path,
            operation_id=operation_id,
            summary=summary,
            description=(
                "Newest first. Follow `next_page_token` as `page_token`. With `format=csv` the page is answered as "
                "text/csv (a header row, nested fields as dotted columns) and the next token is in the "
                "`Next-Page-Token` header."
            ),
            tags=("admin",),
            handler=handler,
            query=query,
            replies=(
                Reply(
                    200,
                    "One page (JSON, or CSV with format=csv).",
                    reply,
                    alternatives={CSV_DOCUMENTED_TYPE: {"type": "string"}},
                ),
            ),
            problems=LIST_PROBLEMS,
        )

    return [
        Operation(
            method="GET",
            path="/api/admin/financial-dashboard",
            operation_id="getFinancialDashboard",
            summary="Revenue, recurring revenue, subscriptions and credits for a date range (admin)",
            description=(
                "The three services are asked at once, each within the gateway's deadline. A service that does not "
                "answer leaves its part null and is named in `missing`: the answer is partial, not an error."
            ),
            tags=("admin",),
            handler=dashboard,
            query=DateRange,
            replies=(Reply(200, "The figures (some may be missing).", FinancialDashboard),),
            problems=(400, 401, 403, 500),
        ),
        listing(
            "/api/admin/transactions",
            "listTransactions",
            "Payments and refunds (admin)",
            transactions,
            TransactionsQuery,
            TransactionsPage,
        ),
        listing(
            "/api/admin/subscriptions",
            "listAllSubscriptions",
            "Everyone's subscriptions (admin)",
            subscriptions,
            AdminSubscriptionsQuery,
            SubscriptionsPage,
        ),
        listing(
            "/api/admin/ledger/transfers",
            "listTransfers",
            "Ledger transfers (admin)",
            transfers,
            TransfersQuery,
            TransfersPage,
        ),
        listing(
            "/api/admin/webhook-events",
            "listWebhookEvents",
            "Stripe events received by a service, with what became of each (admin)",
            webhook_events,
            WebhookEventsQuery,
            WebhookEventsPage,
        ),
        Operation(
            method="POST",
            path="/api/admin/webhook-events/{service}/{event_id}/redrive",
            operation_id="redriveWebhookEvent",
            summary="Apply a rejected or ignored Stripe event again (admin)",
            description=(
                "The service applies the stored event again; its effect still happens at most once. Audited. "
                "Send an Idempotency-Key."
            ),
            tags=("admin",),
            handler=redrive,
            path_parameters=RedrivePath,
            idempotency_key=True,
            replies=(Reply(200, "The event's new record.", WebhookEventRedriven, headers=(REPLAYED_HEADER,)),),
            problems=(400, 401, 403, 404, 409, 422, 500, 503, 504),
        ),
        listing(
            "/api/admin/audit-log",
            "listAuditRecords",
            "Admin actions recorded by a service (admin)",
            audit_log,
            AuditQuery,
            AuditPage,
        ),
    ]

"""`POST /api/admin/reconciliation`: Payments compared with the credit ledger and Stripe (admin).

Payments runs the comparison (its `Reconcile` RPC) for payments created in the
body's UTC days, at most 31 of them so that it finishes within a request; the
answer is the report: every difference, with the ids needed to fix it. Longer
ranges: `python -m payments_svc reconcile`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from billing.payments.v1 import payments_pb2
from gateway.admin_schemas import day_start, stamp
from gateway.auth import TokenVerifier
from gateway.grpc_clients import Backends
from gateway.openapi import Operation, Reply
from gateway.reconciliation_schemas import MAX_RECONCILIATION_DAYS, ReconciliationReport, ReconciliationRequest
from gateway.routes.common import caller, json_response, principal
from gateway.validation import idempotency_key, json_body

# Reading a month from three sources takes longer than an ordinary call; the edge (Envoy) gives an API
# request 15 s, so the gateway answers its own 504 just before that.
RECONCILIATION_DEADLINE_SECONDS = 14.0


def operations(backends: Backends, verifier: TokenVerifier, max_body_bytes: int) -> list[Operation]:
    async def reconcile(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_admin()
        idempotency_key(request)  # required on every POST; a retry simply runs the comparison again
        body = await json_body(request, ReconciliationRequest, max_body_bytes)
        grpc_request = payments_pb2.ReconcileRequest(
            since=stamp(day_start(body.since)), until=stamp(day_start(body.until)), skip_stripe=not body.stripe
        )
        reply = await backends.call(
            backends.payments.Reconcile,
            grpc_request,
            caller(who),
            deadline=max(backends.deadline, RECONCILIATION_DEADLINE_SECONDS),
        )
        return json_response(ReconciliationReport.from_pb(reply.message))

    return [
        Operation(
            method="POST",
            path="/api/admin/reconciliation",
            operation_id="reconcilePayments",
            summary="Compare payments with the credit ledger and Stripe (admin)",
            description=(
                "For the payments created in [since, until) (UTC days, at most "
                f"{MAX_RECONCILIATION_DAYS}), compares Payments' records with the credit ledger's grants and "
                "reversals and, unless `stripe` is false, with Stripe's PaymentIntents and Refunds. Answers every "
                "difference with its kind, the ids involved, what was expected and found, and how to fix it. "
                "Reads only; nothing is changed. An Idempotency-Key is required as on every POST; a retry with the "
                "same key runs the comparison again."
            ),
            tags=("admin",),
            handler=reconcile,
            body=ReconciliationRequest,
            idempotency_key=True,
            replies=(Reply(200, "The report; `discrepancies` is empty when everything agrees.", ReconciliationReport),),
            problems=(400, 401, 403, 413, 415, 500, 503, 504),
        )
    ]

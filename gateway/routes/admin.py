"""Admin-only credit operations under `/api/admin/credits/`; every one needs the admin role.

`POST /api/admin/credits/grants` adds credits to a wallet. It requires an
`Idempotency-Key`: the same key and body again answers the stored response
with `Idempotent-Replayed: true`; the same key with another body answers 422.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from billing.credits.v1 import credits_pb2 as pb
from gateway.auth import TokenVerifier
from gateway.grpc_clients import Backends
from gateway.openapi import Operation, Reply
from gateway.routes.common import caller, json_response, principal
from gateway.schemas import SOURCE_VALUES, GrantCreated, GrantCreditsRequest, LedgerCheck
from gateway.validation import idempotency_key, json_body

REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_REFERENCE_PREFIX = "admin-grant:"


def operations(backends: Backends, verifier: TokenVerifier, max_body_bytes: int) -> list[Operation]:
    async def grant_credits(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_admin()
        key = idempotency_key(request)
        body = await json_body(request, GrantCreditsRequest, max_body_bytes)
        grpc_request = pb.GrantRequest(
            user_id=body.user_id,
            amount=body.amount,
            source=SOURCE_VALUES[body.source],
            reference=body.reference or DEFAULT_REFERENCE_PREFIX + key,
            description=body.description,
        )
        reply = await backends.call(backends.credits.Grant, grpc_request, caller(who, key))
        headers = {REPLAYED_HEADER: "true"} if reply.replayed else {}
        return json_response(GrantCreated.from_pb(reply.message), status=201, headers=headers)

    async def check_ledger(request: Request) -> Response:
        who = principal(request, verifier)
        who.require_admin()
        reply = await backends.call(backends.credits.CheckLedger, pb.CheckLedgerRequest(), caller(who))
        return json_response(LedgerCheck.from_pb(reply.message))

    return [
        Operation(
            method="POST",
            path="/api/admin/credits/grants",
            operation_id="grantCredits",
            summary="Grant credits to a user's wallet (admin)",
            description=(
                "Moves credits from the promotion or adjustment account into the wallet. Send an Idempotency-Key: "
                "a retry with the same key and body answers the first response again, with "
                "`Idempotent-Replayed: true`, and grants nothing more."
            ),
            tags=("admin",),
            handler=grant_credits,
            body=GrantCreditsRequest,
            idempotency_key=True,
            replies=(
                Reply(
                    201,
                    "Granted (or the replay of an earlier grant with this key).",
                    GrantCreated,
                    headers=(REPLAYED_HEADER,),
                ),
            ),
            problems=(400, 401, 403, 409, 413, 415, 422, 500, 503, 504),
        ),
        Operation(
            method="GET",
            path="/api/admin/credits/ledger-check",
            operation_id="checkCreditLedger",
            summary="Prove the credit ledger balances and its hash chains hold (admin)",
            description="Every wallet's balance equals the sum of its entries, every transfer sums to zero, "
            "and all balances sum to zero. The hash chains over transfers (with their entries) and over the audit "
            "log are recomputed from the rows as they are now: `transfer_chain` and `audit_chain` name the first "
            "broken link (a row changed or missing, a seal missing), and count the rows not sealed yet.",
            tags=("admin",),
            handler=check_ledger,
            replies=(
                Reply(
                    200, "The ledger check; `balanced` is false when any rule fails or a chain is broken.", LedgerCheck
                ),
            ),
            problems=(401, 403, 500, 503, 504),
        ),
    ]

"""The caller's credit wallet: `GET /api/credits/balance` and `GET /api/credits/ledger`.

Both read the caller's own wallet; `?user_id=` names another user's, which only
admins may read (403 otherwise). The Credits service checks ownership again.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from billing.credits.v1 import credits_pb2 as pb
from gateway.auth import TokenVerifier
from gateway.grpc_clients import Backends
from gateway.openapi import Operation, Reply
from gateway.routes.common import caller, json_response, principal
from gateway.schemas import Balance, LedgerEntry, LedgerPage, LedgerQuery, WalletQuery
from gateway.validation import parse_query

READ_PROBLEMS = (400, 401, 403, 500, 503, 504)


def operations(backends: Backends, verifier: TokenVerifier) -> list[Operation]:
    async def get_balance(request: Request) -> Response:
        who = principal(request, verifier)
        query = parse_query(request.query_params, WalletQuery)
        user_id = query.user_id or who.user_id
        who.require_access_to_user(user_id)
        reply = await backends.call(backends.credits.GetBalance, pb.GetBalanceRequest(user_id=user_id), caller(who))
        return json_response(Balance.from_pb(reply.message))

    async def get_ledger(request: Request) -> Response:
        who = principal(request, verifier)
        query = parse_query(request.query_params, LedgerQuery)
        user_id = query.user_id or who.user_id
        who.require_access_to_user(user_id)
        grpc_request = pb.ListEntriesRequest(
            user_id=user_id, page_size=query.page_size or 0, page_token=query.page_token or ""
        )
        reply = await backends.call(backends.credits.ListEntries, grpc_request, caller(who))
        page = reply.message
        return json_response(
            LedgerPage(
                user_id=user_id,
                entries=[LedgerEntry.from_pb(entry) for entry in page.entries],
                next_page_token=page.next_page_token or None,
            )
        )

    return [
        Operation(
            method="GET",
            path="/api/credits/balance",
            operation_id="getCreditBalance",
            summary="The credit balance of the caller's wallet",
            tags=("credits",),
            handler=get_balance,
            query=WalletQuery,
            replies=(Reply(200, "The wallet's balance.", Balance),),
            problems=READ_PROBLEMS,
        ),
        Operation(
            method="GET",
            path="/api/credits/ledger",
            operation_id="listCreditLedger",
            summary="The ledger entries of the caller's wallet, newest first",
            description="Follow `next_page_token` (as `page_token`) until it is null to read the whole ledger.",
            tags=("credits",),
            handler=get_ledger,
            query=LedgerQuery,
            replies=(Reply(200, "One page of entries.", LedgerPage),),
            problems=READ_PROBLEMS,
        ),
    ]

"""PostgreSQL restarted (`pg_ctl restart -m fast`, then a crash: `-m immediate`) in the middle of load.

All three services' databases are on a throwaway cluster. While spenders call
Credits' Spend over gRPC, readers ask the gateway for balances and buyers go
through Checkout (webhooks live), the cluster is stopped, probed while down, and
started again. The services are not restarted (same PIDs) and must recover by
themselves; every call made while the database is down fails quickly with a
retryable error (gRPC UNAVAILABLE; HTTP 503 with Retry-After), never a hang or a
500; nothing acknowledged is lost (every Spend answered OK, every grant of a paid
purchase, every webhook answered 2xx is in the owners' databases).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest

from billing.credits.v1 import credits_pb2 as pb
from billing.credits.v1 import credits_pb2_grpc
from gateway.routes.webhooks import owner
from tests.support import pg_cluster
from tests.support.event_replay import acknowledged, attempts, ledger_entries, stored_event_ids
from tests.support.grpc_calls import metadata, new_key
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(pg_cluster.available() is not None, reason=str(pg_cluster.available())),
]

GOOD_CARD = "4242 4242 4242 4242"
CALL_LIMIT_SECONDS = 10.0  # an answer later than this is a hang
SPENDERS = 3


@dataclass
class Load:
    """What the load saw: acknowledged work, and every failure with how long it took."""

    spent: list[tuple[str, str]] = field(default_factory=list)  # (user, reference) answered OK
    bought: list[tuple[str, str]] = field(default_factory=list)  # (user, payment id) paid
    outcomes: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, what: str, took: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.outcomes[what] += 1
            self.slowest = max(self.slowest, took)
            if not ok:
                self.bad.append(f"{what} after {took:.1f}s: {detail[:300]}")
            elif took > CALL_LIMIT_SECONDS:
                self.bad.append(f"{what} took {took:.1f}s")


def http_outcome(response: httpx.Response, ok: int) -> tuple[str, bool, str]:
    if response.status_code == ok:
        return "ok", True, ""
    if response.status_code == 503:
        retry_after = response.headers.get("Retry-After", "")
        problem = response.headers.get("content-type", "").startswith("application/problem+json")
        return "503", retry_after.isdigit() and problem, f"503 Retry-After={retry_after!r} {response.text}"
    return str(response.status_code), False, response.text


@pytest.fixture
def cluster() -> Iterator[pg_cluster.PgCluster]:
    with pg_cluster.pg_cluster() as running:
        yield running


@pytest.fixture
def stack(tmp_path: Path, cluster: pg_cluster.PgCluster) -> Iterator[PurchaseStack]:
    with purchase_stack(tmp_path, databases=cluster.database) as running:
        yield running


def spender(stack: PurchaseStack, buyer: str, load: Load, stop: threading.Event) -> None:
    with grpc.insecure_channel(stack.credits.target) as channel:
        stub = credits_pb2_grpc.CreditsServiceStub(channel)
        while not stop.is_set():
            reference = f"job:{new_key()}"
            began = time.monotonic()
            try:
                stub.Spend(
                    pb.SpendRequest(user_id=buyer, amount=1, reference=reference),
                    metadata=metadata(key=new_key()),
                    timeout=CALL_LIMIT_SECONDS + 5,
                )
            except grpc.RpcError as error:
                code = error.code()
                load.saw(
                    f"spend:{code.name}", time.monotonic() - began, code is grpc.StatusCode.UNAVAILABLE, str(error)
                )
                continue
            load.saw("spend:OK", time.monotonic() - began, True)
            with load.lock:
                load.spent.append((buyer, reference))


def reader(stack: PurchaseStack, buyer: str, load: Load, stop: threading.Event) -> None:
    with httpx.Client(base_url=stack.gateway.url, timeout=CALL_LIMIT_SECONDS + 5) as http:
        while not stop.is_set():
            began = time.monotonic()
            response = http.get("/api/credits/balance", headers=stack.as_user(buyer))
            what, ok, detail = http_outcome(response, 200)
            load.saw(f"balance:{what}", time.monotonic() - began, ok, detail)


def buyer_loop(stack: PurchaseStack, load: Load, stop: threading.Event) -> None:
    with httpx.Client(base_url=stack.gateway.url, timeout=CALL_LIMIT_SECONDS + 5) as http:
        while not stop.is_set():
            buyer = f"pg-buyer-{uuid.uuid4().hex[:8]}"
            began = time.monotonic()
            response = http.post(
                "/api/stripe/create-checkout-session",
                headers={**stack.as_user(buyer), "Idempotency-Key": uuid.uuid4().hex},
                json={
                    "package_id": "credits-100",
                    "success_url": "http://127.0.0.1/ok?session_id={CHECKOUT_SESSION_ID}",
                    "cancel_url": "http://127.0.0.1/no",
                },
            )
            what, ok, detail = http_outcome(response, 201)
            load.saw(f"checkout:{what}", time.monotonic() - began, ok, detail)
            if response.status_code != 201:
                continue
            assert pay_on_hosted_page(stack, response.json()["url"], GOOD_CARD).paid
            with load.lock:
                load.bought.append((buyer, response.json()["payment_id"]))


def probe_while_down(stack: PurchaseStack, buyer: str, load: Load) -> None:
    """Each kind of call while the database is down: a quick, retryable refusal."""
    with grpc.insecure_channel(stack.credits.target) as channel:
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            credits_pb2_grpc.CreditsServiceStub(channel).Spend(
                pb.SpendRequest(user_id=buyer, amount=1, reference=f"job:{new_key()}"),
                metadata=metadata(key=new_key()),
                timeout=CALL_LIMIT_SECONDS + 5,
            )
        took = time.monotonic() - began
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE, raised.value
        assert took < CALL_LIMIT_SECONDS, took
    for path in ("/api/credits/balance", "/api/credits/ledger"):
        began = time.monotonic()
        response = stack.http.get(path, headers=stack.as_user(buyer))
        took = time.monotonic() - began
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["Retry-After"]) > 0
        assert took < CALL_LIMIT_SECONDS, took
    began = time.monotonic()
    response = stack.http.post(
        "/api/stripe/create-checkout-session",
        headers={**stack.as_user(f"pg-probe-{uuid.uuid4().hex[:8]}"), "Idempotency-Key": uuid.uuid4().hex},
        json={"package_id": "credits-100", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no"},
    )
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert time.monotonic() - began < CALL_LIMIT_SECONDS
    load.saw("probes", time.monotonic() - began, True)


def until(condition: Callable[[], bool], what: str) -> None:
    wait_for(lambda: condition() or None, what, seconds=60)


def test_services_ride_out_postgres_restarts_without_losing_acknowledged_work(
    stack: PurchaseStack, cluster: pg_cluster.PgCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    # Wallets with something to spend.
    funded = [f"pg-spender-{uuid.uuid4().hex[:8]}" for _ in range(SPENDERS)]
    for buyer in funded:
        session = stack.buy(buyer, "credits-2000")
        assert pay_on_hosted_page(stack, session["url"], GOOD_CARD).paid
    for buyer in funded:
        wait_for(lambda b=buyer: stack.balance(b) == 2000, "the spenders' grants")  # type: ignore[misc]
    processes = {"credits": stack.credits, "payments": stack.payments, "gateway": stack.gateway}
    pids = {name: p.process.pid for name, p in processes.items() if p.process is not None}

    load, stop = Load(), threading.Event()
    threads = [threading.Thread(target=spender, args=(stack, b, load, stop)) for b in funded]
    threads += [threading.Thread(target=reader, args=(stack, funded[0], load, stop))]
    threads += [threading.Thread(target=buyer_loop, args=(stack, load, stop))]
    for thread in threads:
        thread.start()
    restarts: list[str] = []
    try:
        for mode in ("fast", "immediate", "fast"):
            until(lambda: load.outcomes["spend:OK"] >= 20 * (len(restarts) + 1), "some load before the restart")
            before = sum(load.outcomes.values())
            cluster.stop(mode)
            probe_while_down(stack, funded[0], load)
            cluster.start()
            restarts.append(mode)
            # Recovered by itself: spends and purchases succeed again without restarting anything.
            ok = load.outcomes["spend:OK"]
            until(lambda o=ok: load.outcomes["spend:OK"] > o + 10, f"spends to succeed again after -m {mode}")  # type: ignore[misc]
            assert sum(load.outcomes.values()) > before
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a load thread hangs"
    assert not load.bad, load.bad[:10]
    assert load.outcomes["checkout:ok"] > 0, load.outcomes

    # The same processes, still running.
    for name, process in processes.items():
        assert process.process is not None
        assert process.process.poll() is None, f"{name} died"
        assert process.process.pid == pids[name], f"{name} was restarted"

    # Nothing acknowledged is lost.
    stack.wait_deliveries_done()
    rows = attempts(stack)
    acked = acknowledged(rows)
    payments_events = stored_event_ids(stack.payments_db)
    owned = {e.id for e in stack.stripe.v1.events.list(params={"limit": 100}).auto_paging_iter() if owner(e.to_dict())}
    lost = sorted((acked & owned) - payments_events)
    assert not lost, f"webhooks answered 2xx but not recorded: {lost[:10]}"
    users = [*funded, *(buyer for buyer, _ in load.bought)]

    def expected() -> dict[str, Counter[tuple[str, str, int]]]:
        want: dict[str, Counter[tuple[str, str, int]]] = {user: Counter() for user in users}
        for buyer in funded:
            want[buyer][("grant", "*", 2000)] += 1
        for buyer, reference in load.spent:
            want[buyer][("spend", reference, 1)] += 1
        for buyer, payment_id in load.bought:
            want[buyer][("grant", f"payment:{payment_id}", 100)] += 1
        return want

    def found() -> dict[str, Counter[tuple[str, str, int]]]:
        entries = ledger_entries(stack.credits_db, users)
        for buyer in funded:  # the funding purchase's payment id is not needed: one grant of 2000
            entries[buyer] = Counter({(k, "*" if k == "grant" else r, a): n for (k, r, a), n in entries[buyer].items()})
        return entries

    # Spends answered with an error may still have been applied (the answer was lost): only extra spends of
    # references the load never saw acknowledged are allowed, and only with UNAVAILABLE answers.
    def acknowledged_present() -> bool:
        have, want = found(), expected()
        return all(not (want[u] - have[u]) for u in users)

    wait_for(lambda: acknowledged_present() or None, "every acknowledged spend and grant in the ledger", seconds=60)
    have, want = found(), expected()
    extra = {u: have[u] - want[u] for u in users if have[u] - want[u]}
    unacknowledged = sum(n for what, n in load.outcomes.items() if what == "spend:UNAVAILABLE")
    assert all(kind == "spend" for c in extra.values() for (kind, _, _) in c), extra
    assert sum(sum(c.values()) for c in extra.values()) <= unacknowledged, extra
    check = stack.http.get("/api/admin/credits/ledger-check", headers=stack.as_user("auditor", ("user", "admin")))
    assert check.status_code == 200, check.text
    assert check.json()["balanced"], check.text

    with capsys.disabled():
        print(
            f"\n[postgres] restarts {restarts}; calls {dict(load.outcomes)}; slowest {load.slowest:.2f}s; "
            f"{len(load.spent)} spends and {len(load.bought)} purchases acknowledged, "
            f"{len(acked & owned)} webhooks acknowledged; {time.monotonic() - began:.1f}s"
        )

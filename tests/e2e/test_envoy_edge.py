"""The platform behind the real Envoy binary running deploy/envoy/envoy.yaml, over TLS on real sockets.

The whole purchase path runs as real processes on PostgreSQL (sandbox, Credits, Payments, gateway);
Envoy runs the deployed configuration with only its addresses, certificate paths and (for the rate-limit
test) bucket sizes changed (tests/support/envoy.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, MISSING
from tests.support.envoy import (
    API_HOST,
    MAIN_HOST,
    Certificate,
    EnvoyProcess,
    edge_config,
    make_certificate,
    running_envoy,
)
from tests.support.gateway import token
from tests.support.purchase_stack import PurchaseStack, pay_on_hosted_page, purchase_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

API_BODY_LIMIT = 64 * 1024
WEBHOOK_BODY_LIMIT = 512 * 1024


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, certificate: Certificate) -> Iterator[PurchaseStack]:
    # The sandbox delivers webhooks through Envoy over TLS: it trusts the test certificate.
    sandbox_env = {"SSL_CERT_FILE": str(certificate.cert_file)}
    # With Subscriptions: the gateway is ready (and Envoy's health check passes) only with all three services.
    with purchase_stack(tmp_path_factory.mktemp("edge"), subscriptions=True, sandbox_env=sandbox_env) as running:
        yield running


@pytest.fixture(scope="module")
def envoy(
    stack: PurchaseStack, certificate: Certificate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    config = edge_config(stack.gateway.port, certificate)
    with running_envoy(config, tmp_path_factory.mktemp("envoy")) as running:
        yield running


def client(envoy: EnvoyProcess, certificate: Certificate, host: str, listener: str = "https") -> httpx.Client:
    """A client of the edge that sends `Host: host` and trusts only the test certificate."""
    context = ssl.create_default_context(cafile=str(certificate.cert_file))
    return httpx.Client(base_url=envoy.url(listener), headers={"Host": host}, verify=context, timeout=30)


@pytest.fixture
def api(envoy: EnvoyProcess, certificate: Certificate) -> Iterator[httpx.Client]:
    with client(envoy, certificate, API_HOST) as http:
        yield http


@pytest.fixture
def main(envoy: EnvoyProcess, certificate: Certificate) -> Iterator[httpx.Client]:
    with client(envoy, certificate, MAIN_HOST) as http:
        yield http


def user() -> str:
    return f"edge-{uuid.uuid4().hex[:10]}"


def logged(envoy: EnvoyProcess, request_id: str) -> dict[str, Any]:
    """The access-log line of one request (Envoy writes it as the response completes)."""
    return wait_for(
        lambda: next((line for line in envoy.access_log() if line["request_id"] == request_id), None),
        f"the access-log line of {request_id}",
    )


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Stripe sends with a webhook: `t=<unix time>,v1=<HMAC-SHA256 of "t.body">`."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}


def event_body(padding: int = 0) -> bytes:
    """An event no service acts on (acknowledged, `handled: false`), written the way no JSON encoder
    would re-encode it: odd spacing, escaped and raw non-ASCII text, a trailing newline. If anything
    between Stripe and the gateway changed a byte, the signature would no longer verify."""
    event_id = f"evt_edge_{uuid.uuid4().hex[:16]}"
    note = "x" * padding
    text = (
        f'{{ "id":"{event_id}",  "object" : "event", "type":"customer.created",\r\n'
        f'  "created": {int(time.time())}, "livemode":false, "api_version":"2026-10-28.endive",\n'
        f'  "data":{{"object":{{"id":"cus_edge","object":"customer","name":"Zoë \\u00e9 ☃","note":"{note}"}}}}}}\n'
    )
    return text.encode()


def assert_edge_problem(response: httpx.Response, reason: str) -> None:
    """An answer Envoy made itself: a problem document like the gateway's, under the request's id."""
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["reason"]) == (response.status_code, reason), problem
    assert problem["type"] == "urn:billing:problem:" + reason.lower().replace("_", "-")
    assert problem["request_id"] == response.headers["x-request-id"]


# --- routing --------------------------------------------------------------------------------------


def test_the_api_host_maps_paths_onto_api(stack: PurchaseStack, envoy: EnvoyProcess, api: httpx.Client) -> None:
    buyer = user()
    response = api.get("/credits/balance", headers=stack.as_user(buyer))
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == 0
    line = logged(envoy, response.headers["x-request-id"])
    assert (line["authority"], line["path"], line["upstream_path"]) == (
        API_HOST,
        "/credits/balance",
        "/api/credits/balance",
    )
    # The gateway saw the same request, under the same id, at the mapped path.
    gateway_line = wait_for(
        lambda: next(
            (r for r in stack.gateway.log_records() if r.get("request_id") == response.headers["x-request-id"]),
            None,
        ),
        "the gateway's log line",
    )
    assert gateway_line.get("path") == "/api/credits/balance", gateway_line
    # Not mapped twice: /api/credits/balance on the API host is /api/api/credits/balance, which does not exist.
    assert api.get("/api/credits/balance", headers=stack.as_user(buyer)).status_code == 404


def test_the_main_host_serves_the_pages_and_the_api_unchanged(stack: PurchaseStack, main: httpx.Client) -> None:
    page = main.get("/billing")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers
    assert main.get("/web/billing.js").status_code == 200
    root = main.get("/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (302, f"https://{MAIN_HOST}/billing")
    balance = main.get("/api/credits/balance", headers=stack.as_user(user()))
    assert balance.status_code == 200, balance.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/nothing-here"])
def test_internal_paths_end_at_the_edge(envoy: EnvoyProcess, main: httpx.Client, path: str) -> None:
    response = main.get(path)
    assert response.status_code == 404
    assert_edge_problem(response, "NOT_FOUND")
    line = logged(envoy, response.headers["x-request-id"])
    assert line["upstream"] is None, line  # never forwarded


def test_plain_http_is_redirected_to_https(envoy: EnvoyProcess, certificate: Certificate) -> None:
    with client(envoy, certificate, API_HOST, listener="http") as http:
        response = http.get("/credits/balance", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{API_HOST}/credits/balance"


def test_a_client_supplied_request_id_is_replaced(envoy: EnvoyProcess, api: httpx.Client) -> None:
    response = api.get("/credit-packages", headers={"X-Request-ID": "chosen-by-the-client"})
    assert response.headers["x-request-id"] != "chosen-by-the-client"
    assert logged(envoy, response.headers["x-request-id"])["request_id"] == response.headers["x-request-id"]


def test_the_edge_reports_ready_until_failed(envoy: EnvoyProcess) -> None:
    """The probe endpoint Kubernetes uses: 200 while serving, 503 once told to fail (before a drain)."""
    ready = f"{envoy.url('health')}/ready"
    assert httpx.get(ready, timeout=5).status_code == 200
    assert httpx.get(f"{envoy.url('health')}/other", timeout=5).status_code == 404
    assert httpx.post(f"{envoy.admin_url}/healthcheck/fail", timeout=5).status_code == 200
    try:
        assert httpx.get(ready, timeout=5).status_code == 503
    finally:
        assert httpx.post(f"{envoy.admin_url}/healthcheck/ok", timeout=5).status_code == 200
    assert httpx.get(ready, timeout=5).status_code == 200


def test_prometheus_scrapes_the_edge_and_nothing_else_of_the_admin_interface(
    envoy: EnvoyProcess, api: httpx.Client
) -> None:
    before = metric(envoy.metrics(), "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="edge")
    assert api.get("/credit-packages").status_code == 200
    after = metric(envoy.metrics(), "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="edge")
    assert after == before + 1
    for method, path in [("POST", "/quitquitquit"), ("POST", "/healthcheck/fail"), ("GET", "/config_dump")]:
        response = httpx.request(method, f"{envoy.url('metrics')}{path}", timeout=5)
        assert response.status_code == 404, (method, path)
    assert httpx.post(f"{envoy.url('metrics')}/stats/prometheus", timeout=5).status_code == 404
    assert httpx.get(f"{envoy.url('health')}/ready", timeout=5).status_code == 200  # still serving


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of Prometheus's text format, by the name exposed and labels (0 when absent). The parser
    names a counter's samples `<name>_total`; Envoy exposes counters without the suffix."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            named = sample.name == name or (family.type == "counter" and family.name == name)
            if named and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# --- webhooks -------------------------------------------------------------------------------------


def test_a_purchase_through_the_edge(stack: PurchaseStack, envoy: EnvoyProcess, api: httpx.Client) -> None:
    """Checkout created on the API host; the sandbox's signed webhooks delivered through Envoy over TLS."""
    stack.stripe.v1.webhook_endpoints.update(
        stack.webhook_endpoint_id, params={"url": f"{envoy.url()}/api/stripe/webhook"}
    )
    try:
        buyer = user()
        created = stack.buy(buyer, via=api, path="/stripe/create-checkout-session")
        assert pay_on_hosted_page(stack, created["url"], "4242 4242 4242 4242").paid
        wait_for(lambda: stack.balance(buyer) == 100, "the credits, granted from the webhook that came through Envoy")
        stack.wait_deliveries_done()
    finally:
        stack.stripe.v1.webhook_endpoints.update(
            stack.webhook_endpoint_id, params={"url": f"{stack.gateway.url}/api/stripe/webhook"}
        )
    webhooks = wait_for(
        lambda: [line for line in envoy.access_log() if line["path"] == "/api/stripe/webhook"] or None,
        "the webhooks in Envoy's access log",
    )
    assert {line["status"] for line in webhooks} == {200}, webhooks


def test_a_signed_webhook_arrives_byte_for_byte(stack: PurchaseStack, api: httpx.Client) -> None:
    body = event_body()
    accepted = api.post("/stripe/webhook", content=body, headers=signed(body, stack.webhook_secret))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["handled"] is False
    # The same signature over a body one byte different: refused, so the check above was real.
    altered = body.replace(b"\r\n", b"\n")
    refused = api.post("/stripe/webhook", content=altered, headers=signed(body, stack.webhook_secret))
    assert refused.status_code == 400, refused.text


# --- limits ---------------------------------------------------------------------------------------


def test_an_oversized_api_body_is_refused_at_the_edge(
    stack: PurchaseStack, envoy: EnvoyProcess, api: httpx.Client
) -> None:
    body = json.dumps({"package_id": "credits-100", "note": "x" * API_BODY_LIMIT}).encode()
    response = api.post(
        "/stripe/create-checkout-session",
        content=body,
        headers={**stack.as_user(user()), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert_edge_problem(response, "CONTENT_TOO_LARGE")
    line = logged(envoy, response.headers["x-request-id"])
    assert line["upstream"] is None, line  # the gateway never saw it
    assert line["details"] == "request_payload_too_large"


def test_the_webhook_takes_larger_bodies_up_to_its_own_limit(
    stack: PurchaseStack, envoy: EnvoyProcess, api: httpx.Client
) -> None:
    large = event_body(padding=2 * API_BODY_LIMIT)
    accepted = api.post("/stripe/webhook", content=large, headers=signed(large, stack.webhook_secret))
    assert accepted.status_code == 200, accepted.text
    too_large = event_body(padding=WEBHOOK_BODY_LIMIT)
    refused = api.post("/stripe/webhook", content=too_large, headers=signed(too_large, stack.webhook_secret))
    assert refused.status_code == 413
    assert logged(envoy, refused.headers["x-request-id"])["upstream"] is None


def test_the_rate_limit_answers_429(
    stack: PurchaseStack, certificate: Certificate, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Buckets shrunk to a few tokens (refilled hourly), so that the limit shows within a few requests;
    the API's and the webhook's are separate."""
    config = edge_config(
        stack.gateway.port,
        certificate,
        buckets={"api_rate_limit": (3, 1, "3600s"), "webhook_rate_limit": (5, 1, "3600s")},
    )
    with (
        running_envoy(config, tmp_path_factory.mktemp("limited"), name="limited") as envoy,
        client(envoy, certificate, API_HOST) as api,
    ):
        answers = [api.get("/credit-packages").status_code for _ in range(3)]
        assert answers == [200, 200, 200]
        limited = api.get("/credit-packages")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert_edge_problem(limited, "RATE_LIMITED")
        assert envoy.stat("api_rate_limit.http_local_rate_limit.rate_limited") == 1
        # The name docs/operations.md alerts on.
        scraped = envoy.metrics()
        rate_limited = "envoy_http_local_rate_limit_rate_limited"
        assert metric(scraped, rate_limited, envoy_local_http_ratelimit_prefix="api_rate_limit") == 1
        assert metric(scraped, rate_limited, envoy_local_http_ratelimit_prefix="webhook_rate_limit") == 0
        # The webhook's bucket is its own: Stripe's deliveries still get through.
        body = event_body()
        assert api.post("/stripe/webhook", content=body, headers=signed(body, stack.webhook_secret)).status_code == 200


# --- a browser ------------------------------------------------------------------------------------


def test_the_billing_page_works_in_a_browser_through_the_edge(stack: PurchaseStack, envoy: EnvoyProcess) -> None:
    """Chromium opens https://billing.test:<port>/billing (the name resolved to Envoy); the page, its
    scripts and its same-origin API calls all pass through Envoy over TLS."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    buyer = user()
    origin = f"https://{MAIN_HOST}:{envoy.ports['https']}"
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {MAIN_HOST} 127.0.0.1"]
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            # The test certificate is self-signed; the browser is told to accept it, nothing else.
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            errors: list[str] = []
            api_statuses: list[int] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.on("response", lambda r: api_statuses.append(r.status) if "/api/" in r.url else None)
            page.goto(f"{origin}/billing#token={token(buyer, ('user',), ttl_seconds=600)}")
            playwright_sync.expect(page.locator("#signed-in-as")).to_contain_text(buyer, timeout=30_000)
            playwright_sync.expect(page.locator("#balance")).to_have_text("0", timeout=30_000)
            playwright_sync.expect(page.locator('button[data-package="credits-100"]')).to_be_visible()
            context.close()
        finally:
            browser.close()
    assert errors == []
    assert api_statuses, "the page made no API call"
    assert set(api_statuses) == {200}, api_statuses

    def browsed() -> set[str] | None:
        paths = {line["path"] for line in envoy.access_log() if line["authority"].startswith(MAIN_HOST)}
        return paths if {"/billing", "/web/billing.js", "/api/credits/balance"} <= paths else None

    wait_for(browsed, "the page, its script and its API call in Envoy's access log")

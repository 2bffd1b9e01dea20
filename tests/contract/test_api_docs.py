"""docs/api.md says what the code does: its generated sections are what scripts/gen_api_docs.py produces from
the OpenAPI document and the protos, and its error table has a row for every reason a client can see; and
docs/webhooks.md tells to enable exactly the Stripe events the services act on."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.problems import Reason as GatewayReason
from payments_svc.stripe_events import HANDLED_TYPES as PAYMENTS_EVENTS
from scripts import gen_api_docs
from subscriptions_svc.stripe_events import HANDLED_TYPES as SUBSCRIPTIONS_EVENTS
from svckit.errors import Reason

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
WEBHOOKS_DOC = ROOT / "docs" / "webhooks.md"
FIX = "docs/api.md is out of date: run `make docs` and commit docs/api.md"
# The reasons only the edge (Envoy) answers with (deploy/envoy/envoy.yaml).
EDGE_REASONS = {"RATE_LIMITED", "CONTENT_TOO_LARGE"}


def error_table_reasons(text: str) -> set[str]:
    """The reasons with a row in the table of the REST `### Errors` section."""
    section = text.split("### Errors", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE))


def test_the_generated_sections_are_up_to_date() -> None:
    committed = API_DOC.read_text()
    fresh = gen_api_docs.generated(committed)
    if fresh != committed:
        shown = "\n".join(gen_api_docs.diff(committed, fresh)[:60])
        raise AssertionError(f"{FIX}\n{shown}")


def test_every_rest_operation_and_rpc_is_in_the_document() -> None:
    text = API_DOC.read_text()
    document = gen_api_docs.openapi_document()
    for path, item in document["paths"].items():
        for method in item:
            assert f"#### `{method.upper()} {path}`" in text, f"{method.upper()} {path}: {FIX}"
    for module in gen_api_docs.PROTO_MODULES:
        descriptor = __import__(module, fromlist=["DESCRIPTOR"]).DESCRIPTOR
        for service in descriptor.services_by_name.values():
            for method in service.methods:
                assert f"| `{method.name}` |" in text, f"{service.full_name}.{method.name}: {FIX}"


def test_every_error_reason_has_a_row_in_the_error_table() -> None:
    documented = error_table_reasons(API_DOC.read_text())
    missing = sorted({str(r) for r in Reason} - documented)
    assert not missing, f"docs/api.md's error table (### Errors) has no row for {missing}: add one by hand"


def test_every_gateway_reason_has_a_row_and_no_row_is_made_up() -> None:
    documented = error_table_reasons(API_DOC.read_text())
    known = {str(r) for r in Reason} | {str(r) for r in GatewayReason} | EDGE_REASONS
    assert not sorted({str(r) for r in GatewayReason} - documented), "a gateway reason has no row in the error table"
    assert not sorted(documented - known), f"the error table names reasons no code reports: {documented - known}"


def test_the_markers_are_there_once_each() -> None:
    text = API_DOC.read_text()
    for name in ("rest", "grpc"):
        assert text.count(gen_api_docs.start_marker(name)) == 1
        assert text.count(gen_api_docs.end_marker(name)) == 1


def test_the_webhook_setup_enables_exactly_the_handled_events() -> None:
    text = WEBHOOKS_DOC.read_text()
    listed = text.split("<!-- webhook-events:start -->", 1)[1].split("<!-- webhook-events:end -->", 1)[0]
    documented = set(re.findall(r"`([a-z_.]+)`", listed))
    handled = set(PAYMENTS_EVENTS) | set(SUBSCRIPTIONS_EVENTS)
    assert documented == handled, f"docs/webhooks.md: missing {handled - documented}, extra {documented - handled}"

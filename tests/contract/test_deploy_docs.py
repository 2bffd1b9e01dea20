"""docs/deploy.md and deploy/README.md say what the manifests and the code do: every Secret key prod
reads, the Stripe events the services act on, the example database addresses, the replica bounds, and
only paths that exist."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from payments_svc.stripe_events import HANDLED_TYPES as PAYMENTS_EVENTS
from subscriptions_svc.stripe_events import HANDLED_TYPES as SUBSCRIPTIONS_EVENTS
from tests.contract.k8s_render import (
    DEPLOY_DOC,
    DEV,
    PROD,
    ROOT,
    Doc,
    containers,
    named,
    of_kind,
    references,
    render,
    workloads,
)

README = ROOT / "deploy" / "README.md"
# The keys of a kubernetes.io/tls Secret, which a volume mounts whole.
TLS_KEYS = ("tls.crt", "tls.key")
PATH = re.compile(r"`((?:deploy|docs|tests)/[^`<>*\s]*)`")


def secret_key_problems(docs: list[Doc], text: str) -> list[str]:
    """Every (Secret, key) prod reads is named in the document: the Secret and the key in backquotes."""
    needed = set()
    for _, pod in workloads(docs):
        for container in containers(pod):
            for kind, name, key in references(container, pod):
                if kind == "Secret":
                    needed |= {(name, k) for k in ([key] if key else TLS_KEYS)}
    return [
        f"{name}/{key} is not documented"
        for name, key in sorted(needed)
        if f"`{name}`" not in text or f"`{key}`" not in text
    ]


def webhook_event_problems(text: str) -> list[str]:
    """The events the registration command enables are exactly those Payments and Subscriptions act on."""
    documented = set(re.findall(r'enabled_events\[\]=([a-z_.]+)"', text))
    handled = set(PAYMENTS_EVENTS) | set(SUBSCRIPTIONS_EVENTS)
    problems = [f"{event} is enabled, but no service handles it" for event in sorted(documented - handled)]
    return problems + [f"{event} is handled, but not enabled" for event in sorted(handled - documented)]


def database_address_problems(docs: list[Doc], text: str) -> list[str]:
    """The example address blocks the document tells the operator to replace are the component's."""
    problems = []
    for service in ("credits", "payments", "subscriptions"):
        policy = named(docs, "NetworkPolicy", f"{service}-database-egress")
        cidr = policy["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"]
        if f"| {service} | `{cidr}` |" not in text:
            problems.append(f"the document does not give {cidr} as the example for {service}")
    return problems


def replica_problems(dev: list[Doc], prod: list[Doc], text: str) -> list[str]:
    """The replica bounds of the "What runs" table are the autoscalers'."""
    problems = []
    for name in (doc["metadata"]["name"] for doc in of_kind(prod, "Deployment")):
        bounds = [
            f"{h['spec']['minReplicas']}-{h['spec']['maxReplicas']}"
            for h in (named(d, "HorizontalPodAutoscaler", name) for d in (dev, prod))
        ]
        if not re.search(rf"^\| Deployment `{name}` \|.*\| {bounds[0]} / {bounds[1]} \|$", text, re.MULTILINE):
            problems.append(f"Deployment {name}: the table does not say {bounds[0]} / {bounds[1]}")
    return problems


def path_problems(text: str) -> list[str]:
    return [f"{path} does not exist" for path in PATH.findall(text) if not (ROOT / path).exists()]


def test_the_document_names_every_secret_key_prod_reads() -> None:
    assert secret_key_problems(render(PROD), DEPLOY_DOC.read_text()) == []


def test_the_document_enables_the_webhook_events_the_services_handle() -> None:
    assert webhook_event_problems(DEPLOY_DOC.read_text()) == []


def test_the_document_gives_the_components_example_database_addresses() -> None:
    assert database_address_problems(render(PROD), DEPLOY_DOC.read_text()) == []


def test_the_document_gives_the_autoscalers_bounds() -> None:
    assert replica_problems(render(DEV), render(PROD), DEPLOY_DOC.read_text()) == []


@pytest.mark.parametrize("document", [DEPLOY_DOC, README], ids=["docs/deploy.md", "deploy/README.md"])
def test_the_documents_name_only_paths_that_exist(document: Path) -> None:
    text = document.read_text()
    assert PATH.findall(text)
    assert path_problems(text) == []


# --- the checks can fail ---------------------------------------------------------------------------

Edit = Callable[[str], str]
MUTATIONS: dict[str, tuple[Edit, Callable[[str], list[str]]]] = {
    "Secret key left out": (
        lambda t: t.replace("`MAIL_TOKEN`", "`MAIL_KEY`"),
        lambda t: secret_key_problems(render(PROD), t),
    ),
    "certificate key left out": (
        lambda t: t.replace("`tls.key`", "the key"),
        lambda t: secret_key_problems(render(PROD), t),
    ),
    "handled event not enabled": (
        lambda t: t.replace('  -d "enabled_events[]=invoice.paid" \\\n', ""),
        webhook_event_problems,
    ),
    "unhandled event enabled": (lambda t: t.replace("=invoice.paid", "=invoice.created"), webhook_event_problems),
    "another example address": (
        lambda t: t.replace("`192.0.2.12/32`", "`192.0.2.99/32`"),
        lambda t: database_address_problems(render(PROD), t),
    ),
    "other replica bounds": (
        lambda t: t.replace("| 1-2 / 2-10 |", "| 2 / 2 |", 1),
        lambda t: replica_problems(render(DEV), render(PROD), t),
    ),
    "a path that does not exist": (lambda t: t + "\n`deploy/k8s/overlays/local`\n", path_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_document_checks_find_a_wrong_document(mutation: str) -> None:
    edit, check = MUTATIONS[mutation]
    text = DEPLOY_DOC.read_text()
    assert check(text) == [], "the check must pass on the real document first"
    assert edit(text) != text, "the mutation must change the document"
    assert check(edit(text)) != []

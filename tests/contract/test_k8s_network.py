"""The NetworkPolicies: default deny both ways, then exactly the expected connections in and out of every
workload, and each database reachable only from its own service's pods (the server and its Jobs)."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable

import pytest

from tests.contract.k8s_netpol import INTERNET, matrix, networks_on_port, overlap
from tests.contract.k8s_render import (
    DEV,
    PROD,
    SERVICES,
    Doc,
    named,
    of_kind,
    overlay_docs,
    per_overlay,
    render,
    selected_workloads,
    service_of,
    where,
    workloads,
)

POSTGRES_PORT = 5432
DNS = {"kube-system:53/UDP", "kube-system:53/TCP"}
HTTPS_OUT = f"{INTERNET}:443/TCP"
# An external database is an address block on the PostgreSQL port; which block is the operator's (the
# database isolation check compares the blocks).
EXTERNAL_DATABASE = re.compile(rf"[0-9a-f.:]+/\d+:{POSTGRES_PORT}/TCP")
EXTERNAL = f"database:{POSTGRES_PORT}/TCP"
JOBS = {
    "credits": ["credits-migrate"],
    "payments": ["payments-migrate"],
    "subscriptions": ["subscriptions-migrate", "subscriptions-sync-plans"],
}


def database(service: str, in_cluster: bool) -> str:
    return f"{service}-postgres:postgres" if in_cluster else EXTERNAL


def expected_ingress(in_cluster: bool) -> dict[str, set[str]]:
    """Who may open a connection to whom ("*": from anywhere), on which of its ports."""
    expected = {
        "envoy": {"*:https", "*:http", "monitoring:metrics"},
        "gateway": {"envoy:http", "monitoring:metrics"},
        "credits": {"gateway:grpc", "payments:grpc", "subscriptions:grpc", "monitoring:metrics"},
        "payments": {"gateway:grpc", "subscriptions:grpc", "monitoring:metrics"},
        "subscriptions": {"gateway:grpc", "monitoring:metrics"},
    } | {job: set() for jobs in JOBS.values() for job in jobs}
    if in_cluster:
        expected |= {f"{s}-postgres": {f"{w}:postgres" for w in [s, *JOBS[s]]} for s in SERVICES}
    return expected


def expected_egress(in_cluster: bool) -> dict[str, set[str]]:
    """Where each workload's pods may connect to; every pod may ask the cluster DNS."""
    db = {service: database(service, in_cluster) for service in SERVICES}
    expected = {
        "envoy": {"gateway:http"},
        "gateway": {"credits:grpc", "payments:grpc", "subscriptions:grpc"},
        "credits": {db["credits"]},
        "payments": {"credits:grpc", HTTPS_OUT, db["payments"]},
        "subscriptions": {"credits:grpc", "payments:grpc", HTTPS_OUT, db["subscriptions"]},
        "credits-migrate": {db["credits"]},
        "payments-migrate": {db["payments"]},
        "subscriptions-migrate": {db["subscriptions"]},
        "subscriptions-sync-plans": {HTTPS_OUT, db["subscriptions"]},
    }
    if in_cluster:
        expected |= {f"{s}-postgres": set() for s in SERVICES}
    return {name: edges | DNS for name, edges in expected.items()}


def in_cluster_databases(docs: list[Doc]) -> dict[str, str]:
    """In-cluster database workload -> the service it belongs to."""
    return {doc["metadata"]["name"]: service_of(doc).removesuffix("-postgres") for doc in of_kind(docs, "StatefulSet")}


def network_problems(docs: list[Doc]) -> list[str]:
    """Default deny both ways, every policy selecting pods, and exactly the expected edges."""
    problems = []
    policies = of_kind(docs, "NetworkPolicy")
    if not any(
        p["spec"]["podSelector"] == {}
        and sorted(p["spec"].get("policyTypes", [])) == ["Egress", "Ingress"]
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ):
        problems.append("no default-deny NetworkPolicy for both ingress and egress")
    for policy in policies:
        if not selected_workloads(docs, policy["spec"]["podSelector"]):
            problems.append(f"{where(policy)}: selects no pods")
    in_cluster = bool(in_cluster_databases(docs))
    ingress, found = matrix(docs, "ingress")
    egress, more = matrix(docs, "egress")
    problems += found + more
    egress = {
        name: {EXTERNAL if EXTERNAL_DATABASE.fullmatch(edge) else edge for edge in edges}
        for name, edges in egress.items()
    }
    for direction, actual, expected in (
        ("ingress", ingress, expected_ingress(in_cluster)),
        ("egress", egress, expected_egress(in_cluster)),
    ):
        for name in sorted(set(actual) | set(expected)):
            if actual.get(name) != expected.get(name):
                problems.append(
                    f"{direction} of {name}: {sorted(actual.get(name, []))}, expected {sorted(expected.get(name, []))}"
                )
    return problems


def database_isolation_problems(docs: list[Doc]) -> list[str]:
    """Each service's pods reach its database, and no other pod does: in the cluster, both the database's
    ingress and the caller's egress must allow it; outside, the address blocks open on the PostgreSQL port
    to different services must not overlap."""
    problems = []
    owners = {doc["metadata"]["name"]: service_of(doc) for doc, _ in workloads(docs)}
    databases = in_cluster_databases(docs)
    ingress, _ = matrix(docs, "ingress")
    egress, _ = matrix(docs, "egress")
    for db, service in databases.items():
        for name, owner in owners.items():
            if name == db:
                continue
            reaches = any(edge.startswith(f"{db}:") for edge in egress[name])
            admitted = any(edge.startswith(f"{name}:") for edge in ingress[db])
            if owner == service and not (reaches and admitted):
                problems.append(f"{name} cannot reach its database {db}")
            if owner != service and (reaches or admitted):
                problems.append(f"{name} ({owner}) may reach {db}, the database of {service}")
    blocks = {doc["metadata"]["name"]: networks_on_port(docs, doc, POSTGRES_PORT) for doc, _ in workloads(docs)}
    for name, found in blocks.items():
        if not databases and owners[name] in SERVICES and not found:
            problems.append(f"{name} cannot reach any database")
        if owners[name] not in SERVICES and found:
            problems.append(f"{name} ({owners[name]}) may open port {POSTGRES_PORT} to {[str(n) for n, _ in found]}")
    for (one, one_blocks), (other, other_blocks) in itertools.combinations(blocks.items(), 2):
        if owners[one] == owners[other]:
            continue
        if any(overlap(a, b) for a in one_blocks for b in other_blocks):
            problems.append(f"{one} ({owners[one]}) and {other} ({owners[other]}) may reach the same database address")
    return problems


@per_overlay
def test_network_policies_allow_exactly_the_expected_connections(overlay: str) -> None:
    assert network_problems(overlay_docs(overlay)) == []


@per_overlay
def test_each_database_is_reachable_only_from_its_own_service(overlay: str) -> None:
    assert database_isolation_problems(overlay_docs(overlay)) == []


# --- the checks can fail ---------------------------------------------------------------------------


def _policy_for_nobody(docs: list[Doc]) -> None:
    policy = copy.deepcopy(named(docs, "NetworkPolicy", "payments-ingress"))
    policy["metadata"]["name"] = "ledger-ingress"
    policy["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "ledger"}}
    docs.append(policy)


def _subscriptions_open_to_payments(docs: list[Doc]) -> None:
    peers = named(docs, "NetworkPolicy", "subscriptions-ingress")["spec"]["ingress"][0]["from"]
    peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}}})


def _gateway_open_to_all(docs: list[Doc]) -> None:
    del named(docs, "NetworkPolicy", "gateway-ingress")["spec"]["ingress"][0]["from"]


def _no_default_deny(docs: list[Doc]) -> None:
    docs.remove(named(docs, "NetworkPolicy", "default-deny"))


def _deny_ingress_only(docs: list[Doc]) -> None:
    named(docs, "NetworkPolicy", "default-deny")["spec"]["policyTypes"] = ["Ingress"]


def _every_port_open(docs: list[Doc]) -> None:
    del named(docs, "NetworkPolicy", "credits-ingress")["spec"]["ingress"][0]["ports"]


def _no_dns(docs: list[Doc]) -> None:
    docs.remove(named(docs, "NetworkPolicy", "dns-egress"))


def _gateway_to_stripe(docs: list[Doc]) -> None:
    rule = copy.deepcopy(named(docs, "NetworkPolicy", "payments-egress")["spec"]["egress"][1])
    named(docs, "NetworkPolicy", "gateway-egress")["spec"]["egress"].append(rule)


def _egress_to_the_private_ranges(docs: list[Doc]) -> None:
    del named(docs, "NetworkPolicy", "subscriptions-egress")["spec"]["egress"][1]["to"][0]["ipBlock"]["except"]


def _envoy_to_credits(docs: list[Doc]) -> None:
    peers = named(docs, "NetworkPolicy", "envoy-egress")["spec"]["egress"][0]["to"]
    peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "credits"}}})


def _payments_into_credits_database(docs: list[Doc]) -> None:
    named(docs, "NetworkPolicy", "credits-postgres-ingress")["spec"]["ingress"][0]["from"].append(
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}}}
    )


def _database_for_every_pod(docs: list[Doc]) -> None:
    named(docs, "NetworkPolicy", "payments-database-egress")["spec"]["podSelector"] = {}


def _migration_cut_off(docs: list[Doc]) -> None:
    ingress = named(docs, "NetworkPolicy", "subscriptions-postgres-ingress")["spec"]["ingress"][0]
    ingress["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] = "server"


def _shared_external_database(docs: list[Doc]) -> None:
    credits = named(docs, "NetworkPolicy", "credits-database-egress")["spec"]["egress"][0]["to"][0]["ipBlock"]
    payments = named(docs, "NetworkPolicy", "payments-database-egress")["spec"]["egress"][0]["to"][0]["ipBlock"]
    payments["cidr"] = credits["cidr"]


def _all_ports_to_the_internet(docs: list[Doc]) -> None:
    del named(docs, "NetworkPolicy", "subscriptions-sync-plans-egress")["spec"]["egress"][0]["ports"]


Check = Callable[[list[Doc]], list[str]]
MUTATIONS: dict[str, tuple[str, Callable[[list[Doc]], None], Check]] = {
    "policy selecting no pods": (DEV, _policy_for_nobody, network_problems),
    "extra caller allowed": (DEV, _subscriptions_open_to_payments, network_problems),
    "gateway open to every pod": (PROD, _gateway_open_to_all, network_problems),
    "no default deny": (DEV, _no_default_deny, network_problems),
    "default deny of ingress only": (PROD, _deny_ingress_only, network_problems),
    "every port open": (DEV, _every_port_open, network_problems),
    "no DNS": (PROD, _no_dns, network_problems),
    "gateway calling Stripe": (DEV, _gateway_to_stripe, network_problems),
    "HTTPS to the private ranges": (PROD, _egress_to_the_private_ranges, network_problems),
    "Envoy calling credits": (DEV, _envoy_to_credits, network_problems),
    "payments admitted to credits' database": (DEV, _payments_into_credits_database, database_isolation_problems),
    "every pod out to payments' database": (DEV, _database_for_every_pod, database_isolation_problems),
    "migration Job cut off from its database": (DEV, _migration_cut_off, database_isolation_problems),
    "two services on one database address": (PROD, _shared_external_database, database_isolation_problems),
    "every port to the internet": (PROD, _all_ports_to_the_internet, database_isolation_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_network_checks_find_a_broken_manifest(mutation: str) -> None:
    target, breaks, check = MUTATIONS[mutation]
    docs = render(target)
    assert check(docs) == [], "the check must pass on the real manifests first"
    breaks(docs)
    assert check(docs) != []

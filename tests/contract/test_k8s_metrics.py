"""Every server exposes Prometheus metrics on a container port named metrics, which its settings listen on,
and only the monitoring namespace may reach it."""

from __future__ import annotations

import copy

import pytest

from tests.contract.k8s_netpol import matrix
from tests.contract.k8s_render import (
    DEPLOYMENTS,
    OVERLAYS,
    Doc,
    container_of,
    env_prefix,
    env_value,
    module_of,
    named,
    overlay_docs,
    port_named,
    where,
)

SERVERS = tuple(name for name in DEPLOYMENTS if name != "envoy")
MONITORING = "monitoring:metrics"


def metrics_problems(docs: list[Doc]) -> list[str]:
    problems = []
    ingress, found = matrix(docs, "ingress")
    problems += found
    for name in SERVERS:
        container = container_of(docs, "Deployment", name)
        at = where(named(docs, "Deployment", name), container)
        port = port_named(container, "metrics")
        module = module_of(container)
        if port is None or module is None:
            problems.append(f"{at}: no container port named metrics")
            continue
        setting = f"{env_prefix(module)}METRICS_PORT"
        if (env_value(container, setting) or {}).get("value") != str(port):
            problems.append(f"{at}: {setting} is not the metrics container port {port}")
        if (env_value(container, f"{env_prefix(module)}METRICS_ENABLED") or {}).get("value") in ("false", "0"):
            problems.append(f"{at}: metrics are turned off")
        if MONITORING not in ingress.get(name, set()):
            problems.append(f"{name}: the monitoring namespace may not scrape its metrics port")
    # Envoy has no settings of ours: its metrics port is the listener checked by test_k8s_envoy.
    if port_named(container_of(docs, "Deployment", "envoy"), "metrics") is None:
        problems.append("envoy: no container port named metrics")
    if MONITORING not in ingress.get("envoy", set()):
        problems.append("envoy: the monitoring namespace may not scrape its metrics port")
    for name, edges in ingress.items():
        for edge in edges:
            if edge.endswith(":metrics") and edge != MONITORING:
                problems.append(f"{name}: {edge} may reach the metrics port")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_server_exposes_metrics_to_the_monitoring_namespace_only(overlay: str) -> None:
    assert metrics_problems(overlay_docs(overlay)) == []


def test_the_metrics_check_finds_a_wrong_port_and_a_missing_policy() -> None:
    docs = copy.deepcopy(overlay_docs("prod"))
    (server,) = named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"]
    (env,) = [var for var in server["env"] if var["name"] == "CREDITS_METRICS_PORT"]
    env["value"] = "9999"
    docs = [d for d in docs if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "metrics-ingress")]
    problems = metrics_problems(docs)
    assert any("CREDITS_METRICS_PORT is not the metrics container port" in p for p in problems)
    assert any("monitoring namespace may not scrape" in p for p in problems)


def test_the_metrics_check_finds_envoy_unscraped() -> None:
    docs = copy.deepcopy(overlay_docs("prod"))
    docs = [d for d in docs if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "envoy-metrics-ingress")]
    assert "envoy: the monitoring namespace may not scrape its metrics port" in metrics_problems(docs)

"""Services, disruption budgets, autoscalers and accounts point at what exists; the gRPC services and the
gateway are headless, and every caller reaches them by a DNS target naming that headless Service."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.contract.k8s_render import (
    CLUSTER_DOMAIN,
    DEV,
    NAMESPACE,
    PROD,
    SERVICES,
    Doc,
    billing_containers,
    env_value,
    environment,
    named,
    of_kind,
    overlay_docs,
    per_overlay,
    pod_labels,
    pod_ports,
    render,
    selected_workloads,
    selects,
    where,
    workloads,
)

# Resolved by DNS to the ready pods' addresses, which the callers balance over themselves.
HEADLESS = frozenset({*SERVICES, "gateway"})
# Fewest pods per Deployment in production: with a budget of maxUnavailable 1, one always serves.
PROD_MIN_REPLICAS = 2
TARGET = re.compile(
    rf"dns:///(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.{re.escape(CLUSTER_DOMAIN)}:(?P<port>\d+)"
)


def service_problems(docs: list[Doc]) -> list[str]:
    """Each Service selects the pods of one Deployment or StatefulSet and targets their named ports;
    a headless one (no virtual IP, no port mapping) must offer the container's own port number."""
    problems = []
    for doc in docs:
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE:
            problems.append(f"{where(doc)}: not in namespace {NAMESPACE}")
    for service in of_kind(docs, "Service"):
        name, spec = service["metadata"]["name"], service["spec"]
        chosen = selected_workloads(docs, {"matchLabels": spec["selector"]})
        if [doc["kind"] for doc in chosen] not in (["Deployment"], ["StatefulSet"]):
            problems.append(f"{where(service)}: selects {[where(doc) for doc in chosen]}, not one Deployment")
            continue
        ports = pod_ports(chosen[0]["spec"]["template"]["spec"])
        headless = spec.get("clusterIP") == "None"
        if name in HEADLESS and not headless:
            problems.append(f"{where(service)}: not headless (clusterIP: None)")
        for port in spec["ports"]:
            if port["targetPort"] not in ports or port["name"] != port["targetPort"]:
                problems.append(f"{where(service)}: port {port['name']} does not target the pods' port of that name")
            elif headless and port["port"] != ports[port["targetPort"]]:
                problems.append(f"{where(service)}: headless, but port {port['port']} is not the pods' port")
            if port["name"] == "grpc" and port.get("appProtocol") != "grpc":
                problems.append(f"{where(service)}: port grpc has no appProtocol grpc")
    return problems


def budget_problems(docs: list[Doc]) -> list[str]:
    """One PodDisruptionBudget and one Service of its own name per Deployment; accounts that exist."""
    problems = []
    for deployment in of_kind(docs, "Deployment"):
        name, labels = deployment["metadata"]["name"], pod_labels(deployment)
        budgets = [pdb for pdb in of_kind(docs, "PodDisruptionBudget") if selects(pdb["spec"]["selector"], labels)]
        if len(budgets) != 1:
            problems.append(f"{where(deployment)}: {len(budgets)} PodDisruptionBudgets, expected one")
        if not selects(deployment["spec"]["selector"], labels):
            problems.append(f"{where(deployment)}: its selector does not match its own pods")
        services = [s for s in of_kind(docs, "Service") if selects({"matchLabels": s["spec"]["selector"]}, labels)]
        if [s["metadata"]["name"] for s in services] != [name]:
            problems.append(f"{where(deployment)}: exposed by {[s['metadata']['name'] for s in services]}")
        strategy = deployment["spec"].get("strategy", {})
        if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
            problems.append(f"{where(deployment)}: a rollout may take a serving pod away before its successor is ready")
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        # int-or-string: the schema takes any string, the API server only a number or a percentage.
        for field in ("minAvailable", "maxUnavailable"):
            value = pdb["spec"].get(field, 0)
            if not isinstance(value, int) and not re.fullmatch(r"\d+%", str(value)):
                problems.append(f"{where(pdb)}: {field} {value!r} is neither a number nor a percentage")
        chosen = selected_workloads(docs, pdb["spec"]["selector"])
        if [doc["kind"] for doc in chosen] != ["Deployment"]:
            problems.append(f"{where(pdb)}: selects {[where(doc) for doc in chosen]}, not one Deployment")
    accounts = {doc["metadata"]["name"] for doc in of_kind(docs, "ServiceAccount")}
    for doc, pod in workloads(docs):
        if pod.get("serviceAccountName") not in accounts:
            problems.append(f"{where(doc)}: service account {pod.get('serviceAccountName')!r} is not defined")
    return problems


def autoscaler_problems(docs: list[Doc], min_replicas: int = 1) -> list[str]:
    """Exactly one autoscaling/v2 HorizontalPodAutoscaler on CPU per Deployment, which then leaves its
    replicas alone, with at least `min_replicas` and more than its budget may take away."""
    problems = []
    autoscalers = of_kind(docs, "HorizontalPodAutoscaler")
    for hpa in autoscalers:
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref.get("apiVersion"), ref["kind"]) != ("apps/v1", "Deployment"):
            problems.append(f"{where(hpa)}: scales {ref}, not a Deployment")
        elif ref["name"] not in {doc["metadata"]["name"] for doc in of_kind(docs, "Deployment")}:
            problems.append(f"{where(hpa)}: scales Deployment {ref['name']}, which does not exist")
        metrics = [(m.get("resource") or {}).get("name") for m in hpa["spec"].get("metrics", [])]
        if hpa["apiVersion"] != "autoscaling/v2" or metrics != ["cpu"]:
            problems.append(f"{where(hpa)}: not an autoscaling/v2 autoscaler on CPU alone ({metrics})")
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        mine = [hpa for hpa in autoscalers if hpa["spec"]["scaleTargetRef"]["name"] == name]
        if len(mine) != 1:
            problems.append(f"{where(deployment)}: {len(mine)} HorizontalPodAutoscalers, expected one")
            continue
        if "replicas" in deployment["spec"]:
            problems.append(f"{where(deployment)}: sets replicas, which its HorizontalPodAutoscaler owns")
        low, high = mine[0]["spec"].get("minReplicas", 1), mine[0]["spec"]["maxReplicas"]
        if not min_replicas <= low <= high:
            problems.append(f"{where(mine[0])}: replicas {low}..{high}, expected at least {min_replicas}..")
        budget = named(docs, "PodDisruptionBudget", name)["spec"].get("maxUnavailable", 0)
        if min_replicas > 1 and isinstance(budget, int) and low - budget < 1:
            problems.append(f"{where(deployment)}: its budget may evict all {low} pods")
    return problems


def target_problems(docs: list[Doc]) -> list[str]:
    """Every `*_TARGET` setting is dns:///<service>.<namespace>.svc.cluster.local:<port>, naming the
    headless Service of the service in its name, on its grpc port."""
    problems = []
    for doc, container, _ in billing_containers(docs):
        for name, value in environment(docs, container).items():
            if not name.endswith("_TARGET"):
                continue
            at = f"{where(doc, container)}: {name}={value}"
            match = TARGET.fullmatch(value)
            if match is None:
                problems.append(f"{at} is not dns:///<service>.{NAMESPACE}.{CLUSTER_DOMAIN}:<port>")
                continue
            expected = name.removesuffix("_TARGET").rsplit("_", 1)[-1].lower()
            service = next((s for s in of_kind(docs, "Service") if s["metadata"]["name"] == match["service"]), None)
            if match["service"] != expected or match["namespace"] != NAMESPACE or service is None:
                problems.append(f"{at} does not name the Service {expected} in {NAMESPACE}")
            elif service["spec"].get("clusterIP") != "None":
                problems.append(f"{at}: the Service is not headless, so calls would not spread over its pods")
            elif {p["name"]: p["port"] for p in service["spec"]["ports"]}.get("grpc") != int(match["port"]):
                problems.append(f"{at} is not the Service's grpc port")
    return problems


@per_overlay
def test_services_select_one_workload_and_offer_its_ports(overlay: str) -> None:
    assert service_problems(overlay_docs(overlay)) == []


@per_overlay
def test_budgets_services_and_accounts_are_wired(overlay: str) -> None:
    assert budget_problems(overlay_docs(overlay)) == []


def test_dev_autoscales_every_deployment() -> None:
    assert autoscaler_problems(render(DEV)) == []


def test_prod_keeps_at_least_two_pods_of_every_deployment() -> None:
    assert autoscaler_problems(render(PROD), min_replicas=PROD_MIN_REPLICAS) == []


@per_overlay
def test_callers_reach_the_services_through_headless_dns_targets(overlay: str) -> None:
    docs = overlay_docs(overlay)
    assert target_problems(docs) == []
    targets = {n for _, c, _ in billing_containers(docs) for n in environment(docs, c) if n.endswith("_TARGET")}
    expected = {f"GATEWAY_{s.upper()}_TARGET" for s in SERVICES}
    assert targets == expected | {
        "PAYMENTS_CREDITS_TARGET",
        "SUBSCRIPTIONS_CREDITS_TARGET",
        "SUBSCRIPTIONS_PAYMENTS_TARGET",
    }


@per_overlay
def test_each_service_has_a_migration_job_with_the_servers_database(overlay: str) -> None:
    docs = overlay_docs(overlay)
    jobs = {f"{service}-migrate": [f"{service}_svc", "migrate"] for service in SERVICES}
    jobs["subscriptions-sync-plans"] = ["subscriptions_svc", "sync-plans"]
    assert {doc["metadata"]["name"] for doc in of_kind(docs, "Job")} == set(jobs)
    for name, (module, command) in jobs.items():
        pod = named(docs, "Job", name)["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (job,) = pod["containers"]
        assert job["command"] == ["python", "-m", module, command]
        service = module.removesuffix("_svc")
        (server,) = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"]
        url = f"{service.upper()}_DATABASE_URL"
        assert env_value(job, url) == env_value(server, url)
        assert env_value(job, url) is not None
        assert job["envFrom"] == server["envFrom"], "the Job reads the server's ConfigMap"
        assert job["image"] == server["image"]


# --- the checks can fail ---------------------------------------------------------------------------


def _service_selects_the_job(docs: list[Doc]) -> None:
    named(docs, "Service", "credits")["spec"]["selector"] = {"app.kubernetes.io/name": "credits"}


def _virtual_ip(docs: list[Doc]) -> None:
    del named(docs, "Service", "payments")["spec"]["clusterIP"]


def _headless_port_mapped(docs: list[Doc]) -> None:
    named(docs, "Service", "gateway")["spec"]["ports"][0]["port"] = 80


def _budget_in_words(docs: list[Doc]) -> None:
    named(docs, "PodDisruptionBudget", "payments")["spec"]["maxUnavailable"] = "one"


def _no_envoy_budget(docs: list[Doc]) -> None:
    docs.remove(named(docs, "PodDisruptionBudget", "envoy"))


def _surge_by_removal(docs: list[Doc]) -> None:
    named(docs, "Deployment", "subscriptions")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1


def _replicas_beside_the_autoscaler(docs: list[Doc]) -> None:
    named(docs, "Deployment", "gateway")["spec"]["replicas"] = 3


def _no_autoscaler(docs: list[Doc]) -> None:
    docs.remove(named(docs, "HorizontalPodAutoscaler", "credits"))


def _one_envoy(docs: list[Doc]) -> None:
    named(docs, "HorizontalPodAutoscaler", "envoy")["spec"]["minReplicas"] = 1


def _autoscaler_on_memory(docs: list[Doc]) -> None:
    named(docs, "HorizontalPodAutoscaler", "payments")["spec"]["metrics"][0]["resource"]["name"] = "memory"


def _cluster_ip_target(docs: list[Doc]) -> None:
    for doc in of_kind(docs, "ConfigMap"):
        if "GATEWAY_CREDITS_TARGET" in doc["data"]:
            doc["data"]["GATEWAY_CREDITS_TARGET"] = "credits:50051"


def _crossed_target(docs: list[Doc]) -> None:
    for doc in of_kind(docs, "ConfigMap"):
        if "SUBSCRIPTIONS_PAYMENTS_TARGET" in doc["data"]:
            doc["data"]["SUBSCRIPTIONS_PAYMENTS_TARGET"] = f"dns:///credits.{NAMESPACE}.{CLUSTER_DOMAIN}:50051"


Check = Callable[[list[Doc]], list[str]]
MUTATIONS: dict[str, tuple[str, Callable[[list[Doc]], None], Check]] = {
    "Service selecting the migration Job": (DEV, _service_selects_the_job, service_problems),
    "gRPC Service with a virtual IP": (DEV, _virtual_ip, service_problems),
    "headless Service on another port": (DEV, _headless_port_mapped, service_problems),
    "disruption budget in words": (DEV, _budget_in_words, budget_problems),
    "Envoy without a disruption budget": (DEV, _no_envoy_budget, budget_problems),
    "rollout removing a pod first": (DEV, _surge_by_removal, budget_problems),
    "replicas beside the autoscaler": (DEV, _replicas_beside_the_autoscaler, autoscaler_problems),
    "Deployment without autoscaler": (DEV, _no_autoscaler, autoscaler_problems),
    "autoscaler on memory": (DEV, _autoscaler_on_memory, autoscaler_problems),
    "one Envoy in production": (PROD, _one_envoy, lambda docs: autoscaler_problems(docs, PROD_MIN_REPLICAS)),
    "target through a virtual IP": (DEV, _cluster_ip_target, target_problems),
    "target naming another service": (PROD, _crossed_target, target_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_wiring_checks_find_a_broken_manifest(mutation: str) -> None:
    target, breaks, check = MUTATIONS[mutation]
    docs = render(target)
    assert check(docs) == [], "the check must pass on the real manifests first"
    breaks(docs)
    assert check(docs) != []

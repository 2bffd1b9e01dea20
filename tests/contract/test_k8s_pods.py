"""Every pod is locked down and sized, every long-running container is probed the way its program
answers, and every Deployment's grace period outlasts its preStop sleep and its drain."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from gateway.__main__ import GRACEFUL_SHUTDOWN_SECONDS as GATEWAY_DRAIN_SECONDS
from tests.contract.k8s_render import (
    DEPLOYMENTS,
    DEV,
    SETTINGS,
    Doc,
    containers,
    env_prefix,
    env_value,
    is_grpc_server,
    module_of,
    named,
    of_kind,
    overlay_docs,
    per_overlay,
    port_named,
    prestop_seconds,
    render,
    where,
    workloads,
)

# What a server in a pod must listen on, and where a read-only root leaves room to write.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
SCRATCH = "/tmp"  # noqa: S108
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# Envoy's health listener (deploy/envoy/envoy.yaml): 200 while serving, 503 while draining.
ENVOY_READY = "/ready"
# Envoy exits at once on SIGTERM: its preStop sleep is its whole drain, and must give the endpoints
# and a cloud load balancer time to stop sending it connections.
ENVOY_DRAIN_SECONDS = 0.0
# The least preStop sleep before SIGTERM: endpoints (and DNS, for the headless Services) drop the pod.
MIN_PRESTOP_SECONDS = {"envoy": 15, "gateway": 10, "credits": 5, "payments": 5, "subscriptions": 5}


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
            problems.append(f"{where(doc)}: the pod does not run as a non-root numeric user")
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
            if context.get("runAsUser", 1) == 0:
                problems.append(f"{at}: runs as root")
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


def _grpc_server_problems(at: str, container: Doc) -> list[str]:
    problems = []
    prefix = env_prefix(module_of(container) or "")
    port = port_named(container, "grpc")
    if port is None:
        problems.append(f"{at}: no container port named grpc")
    for probe in PROBES:
        grpc = container.get(probe, {}).get("grpc")
        if grpc is None:
            problems.append(f"{at}: {probe} is not a gRPC health probe")
        elif grpc.get("port") != port or grpc.get("service", "") != "":
            problems.append(f"{at}: {probe} does not check the overall health on the grpc port")
    if (env_value(container, f"{prefix}GRPC_PORT") or {}).get("value") != str(port):
        problems.append(f"{at}: {prefix}GRPC_PORT is not the grpc container port {port}")
    if (env_value(container, f"{prefix}GRPC_HOST") or {}).get("value") != ALL_INTERFACES:
        problems.append(f"{at}: {prefix}GRPC_HOST is not {ALL_INTERFACES}")
    return problems


def _http_probe_problems(at: str, container: Doc, port_name: str, paths: dict[str, str]) -> list[str]:
    port = port_named(container, port_name)
    problems = [] if port else [f"{at}: no container port named {port_name}"]
    for probe, path in paths.items():
        http = container.get(probe, {}).get("httpGet", {})
        if http.get("path") != path or http.get("port") not in (port_name, port):
            problems.append(f"{at}: {probe} is not GET {path} on the {port_name} port")
    return problems


def probe_problems(docs: list[Doc]) -> list[str]:
    """gRPC servers: startup, readiness and liveness by gRPC health on the port named grpc, listening
    on every interface; the gateway: HTTP probes on the port named http; Envoy: GET /ready on its
    health listener; the databases: pg_isready over TCP."""
    problems = []
    deployments = of_kind(docs, "Deployment")
    if sorted(doc["metadata"]["name"] for doc in deployments) != sorted(DEPLOYMENTS):
        problems.append(f"unexpected Deployments {[doc['metadata']['name'] for doc in deployments]}")
    for doc in [*deployments, *of_kind(docs, "StatefulSet")]:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            at = where(doc, container)
            module = module_of(container)
            if is_grpc_server(container):
                problems += _grpc_server_problems(at, container)
            elif module == "gateway":
                paths = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
                problems += _http_probe_problems(at, container, "http", paths)
                if (env_value(container, "GATEWAY_PORT") or {}).get("value") != str(port_named(container, "http")):
                    problems.append(f"{at}: GATEWAY_PORT is not the http container port")
                if (env_value(container, "GATEWAY_HOST") or {}).get("value") != ALL_INTERFACES:
                    problems.append(f"{at}: GATEWAY_HOST is not {ALL_INTERFACES}")
            elif doc["metadata"]["name"] == "envoy":
                problems += _http_probe_problems(at, container, "health", dict.fromkeys(PROBES, ENVOY_READY))
            elif doc["kind"] == "StatefulSet":
                port = port_named(container, "postgres")
                for probe in PROBES:
                    command = container.get(probe, {}).get("exec", {}).get("command", [])
                    if command[:1] != ["pg_isready"] or f"--port={port}" not in command:
                        problems.append(f"{at}: {probe} is not pg_isready on the postgres port")
            else:
                problems.append(f"{at}: runs {module}, which is neither a server, the gateway nor Envoy")
    return problems


def drain_problems(docs: list[Doc]) -> list[str]:
    """The kubelet must not kill a pod before its preStop sleep and its drain are over, and the sleep
    must last until the pod no longer receives new connections."""
    problems = []
    for doc in of_kind(docs, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        budget = int(pod.get("terminationGracePeriodSeconds", 30))
        for container in pod["containers"]:
            module = module_of(container)
            if module is None:
                drain = ENVOY_DRAIN_SECONDS
            elif module == "gateway":
                drain = float(GATEWAY_DRAIN_SECONDS)
            else:
                var = env_value(container, f"{env_prefix(module)}GRACE_PERIOD_SECONDS")
                default = SETTINGS[module].model_fields["grace_period_seconds"].default
                drain = float(var["value"]) if var and "value" in var else float(default)
            sleep = prestop_seconds(container)
            if budget <= sleep + drain:
                problems.append(
                    f"{where(doc, container)}: terminationGracePeriodSeconds {budget} does not outlast "
                    f"preStop {sleep} s + drain {drain} s"
                )
            least = MIN_PRESTOP_SECONDS.get(doc["metadata"]["name"], 5)
            if sleep < least:
                problems.append(f"{where(doc, container)}: preStop sleep {sleep} s, shorter than {least} s")
    return problems


@per_overlay
def test_every_container_is_locked_down(overlay: str) -> None:
    assert lockdown_problems(overlay_docs(overlay)) == []


@per_overlay
def test_every_long_running_container_is_probed(overlay: str) -> None:
    assert probe_problems(overlay_docs(overlay)) == []


@per_overlay
def test_termination_grace_outlasts_the_drain(overlay: str) -> None:
    assert drain_problems(overlay_docs(overlay)) == []


# --- the checks can fail ---------------------------------------------------------------------------


def _drop_limits(docs: list[Doc]) -> None:
    del named(docs, "Job", "payments-migrate")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def _envoy_without_requests(docs: list[Doc]) -> None:
    del named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]


def _writable_root(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False


def _writable_database_root(docs: list[Doc]) -> None:
    container = named(docs, "StatefulSet", "credits-postgres")["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False


def _root_user(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]
    del container["securityContext"]["runAsNonRoot"]


def _envoy_as_root(docs: list[Doc]) -> None:
    named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0


def _capability_added(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]


def _probe_wrong_port(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "subscriptions")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"grpc": {"port": 50052}}


def _probe_over_tcp(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"] = {"tcpSocket": {"port": "grpc"}}


def _envoy_probed_on_the_https_port(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["port"] = "https"


def _envoy_unprobed(docs: list[Doc]) -> None:
    del named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]


def _database_unprobed(docs: list[Doc]) -> None:
    del named(docs, "StatefulSet", "payments-postgres")["spec"]["template"]["spec"]["containers"][0]["startupProbe"]


def _extra_deployment(docs: list[Doc]) -> None:
    copied = copy.deepcopy(named(docs, "Deployment", "gateway"))
    copied["metadata"]["name"] = "gateway-canary"
    docs.append(copied)


def _short_grace(docs: list[Doc]) -> None:
    named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 12


def _envoy_grace_within_its_sleep(docs: list[Doc]) -> None:
    named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 15


def _envoy_short_sleep(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]
    container["lifecycle"]["preStop"]["sleep"]["seconds"] = 2


def _no_prestop(docs: list[Doc]) -> None:
    del named(docs, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]["lifecycle"]


Check = Callable[[list[Doc]], list[str]]
MUTATIONS: dict[str, tuple[Callable[[list[Doc]], None], Check]] = {
    "limits removed": (_drop_limits, lockdown_problems),
    "Envoy without requests": (_envoy_without_requests, lockdown_problems),
    "writable root filesystem": (_writable_root, lockdown_problems),
    "writable root filesystem for PostgreSQL": (_writable_database_root, lockdown_problems),
    "runAsNonRoot removed": (_root_user, lockdown_problems),
    "Envoy as root": (_envoy_as_root, lockdown_problems),
    "capability added": (_capability_added, lockdown_problems),
    "readiness on another port": (_probe_wrong_port, probe_problems),
    "liveness over TCP": (_probe_over_tcp, probe_problems),
    "Envoy probed on its https port": (_envoy_probed_on_the_https_port, probe_problems),
    "Envoy without liveness": (_envoy_unprobed, probe_problems),
    "database without startup probe": (_database_unprobed, probe_problems),
    "unexpected Deployment": (_extra_deployment, probe_problems),
    "grace shorter than the drain": (_short_grace, drain_problems),
    "Envoy's grace within its preStop sleep": (_envoy_grace_within_its_sleep, drain_problems),
    "Envoy's preStop sleep too short": (_envoy_short_sleep, drain_problems),
    "no preStop sleep": (_no_prestop, drain_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_pod_checks_find_a_broken_manifest(mutation: str) -> None:
    breaks, check = MUTATIONS[mutation]
    docs = render(DEV)
    assert check(docs) == [], "the check must pass on the real manifests first"
    breaks(docs)
    assert check(docs) != []

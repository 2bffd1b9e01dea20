"""Configuration: no credential in the base or in prod (Secrets are only referenced), every referenced
Secret and ConfigMap present with its keys where the overlay provides it, every variable a real setting,
the dev overlay's settings passing production validation against its own databases, and pinned images."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from svckit.settings import describe_errors
from tests.contract.k8s_render import (
    BASE,
    DEV,
    OPERATOR_SECRETS,
    PROD,
    REGISTRY,
    SERVICES,
    SETTINGS,
    Doc,
    billing_containers,
    config_data,
    container_of,
    containers,
    env_prefix,
    environment,
    module_of,
    named,
    of_kind,
    overlay_docs,
    per_overlay,
    references,
    render,
    secret_data,
    where,
    workloads,
)

# Environment variables and ConfigMap keys whose values are credentials or contain them (a public key,
# such as GATEWAY_JWT_PUBLIC_KEY, is not one).
SECRET_SUFFIXES = (
    "TOKEN",
    "TOKENS",
    "SECRET",
    "SECRETS",
    "PASSWORD",
    "DATABASE_URL",
    "API_KEY",
    "SECRET_KEY",
    "PRIVATE_KEY",
)
# Values that are credentials whatever they are called: Stripe keys, webhook secrets, a password in a URL,
# a PEM private key.
SECRET_VALUE = re.compile(r"\b[sr]k_(live|test)_|\bwhsec_|://[^/\s:@]+:[^/\s@]+@|-----BEGIN [A-Z ]*PRIVATE KEY")
# How exactly third-party images are pinned: a tag with the full version (PostgreSQL's is major.minor).
PINNED_TAG = {
    "postgres": r"\d+\.\d+-[a-z]+",
    "envoyproxy/envoy": r"distroless-v\d+\.\d+\.\d+",
}
RELEASE = r"(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})"
IMAGE = re.compile(r"(?P<repository>[^:@]+)(:(?P<tag>[^@]+))?(@(?P<digest>sha256:[0-9a-f]{64}))?")


def no_secret_problems(docs: list[Doc]) -> list[str]:
    """No Secret object, and no credential as a literal value or in a ConfigMap."""
    problems = [f"{where(doc)}: a Secret" for doc in of_kind(docs, "Secret")]
    for doc, pod in workloads(docs):
        for container in containers(pod):
            for var in container.get("env", []):
                if "value" in var and (var["name"].endswith(SECRET_SUFFIXES) or SECRET_VALUE.search(var["value"])):
                    problems.append(f"{where(doc, container)}: {var['name']} has a literal credential")
    for doc in of_kind(docs, "ConfigMap"):
        for key, value in doc.get("data", {}).items():
            if key.endswith(SECRET_SUFFIXES) or SECRET_VALUE.search(value):
                problems.append(f"{where(doc)}: {key} is a credential in a ConfigMap")
    return problems


def reference_problems(docs: list[Doc], *, provided: frozenset[str] | None) -> list[str]:
    """Every Secret and ConfigMap a container reads is in the render, with the keys it reads. `provided`:
    the Secrets the overlay must generate (None: none, the operator creates them all)."""
    problems = []
    available = {"Secret": secret_data(docs), "ConfigMap": config_data(docs)}
    for doc, pod in workloads(docs):
        for container in containers(pod):
            for kind, name, key in references(container, pod):
                if kind == "Secret" and (provided is None or name not in provided):
                    continue
                if name not in available[kind]:
                    problems.append(f"{where(doc, container)}: reads {kind} {name}, which is not in the render")
                elif key is not None and key not in available[kind][name]:
                    problems.append(f"{where(doc, container)}: reads key {key} of {kind} {name}, which has no such key")
    return problems


def secrets_read(docs: list[Doc]) -> set[str]:
    return {
        name
        for _, pod in workloads(docs)
        for c in containers(pod)
        for k, name, _ in references(c, pod)
        if k == "Secret"
    }


def setting_name_problems(docs: list[Doc]) -> list[str]:
    """Settings ignore unknown variables, so a misspelt one would be dropped without a word."""
    problems = []
    configs = config_data(docs)
    for doc, container, module in billing_containers(docs):
        settings, prefix = SETTINGS[module], env_prefix(module)
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
    mode; and every caller's credential is the one its callee expects from it."""
    problems = []
    for doc, container, module in billing_containers(docs):
        settings_type, prefix = SETTINGS[module], env_prefix(module)
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

    def env(name: str) -> dict[str, str]:
        return environment(docs, container_of(docs, "Deployment", name))

    # (callee, caller, the caller's variable holding its token there)
    calls = [(s, "gateway", "GATEWAY_SERVICE_TOKEN") for s in SERVICES]
    calls += [
        ("credits", "payments", "PAYMENTS_CREDITS_TOKEN"),
        ("credits", "subscriptions", "SUBSCRIPTIONS_CREDITS_TOKEN"),
    ]
    calls += [("payments", "subscriptions", "SUBSCRIPTIONS_PAYMENTS_TOKEN")]
    for callee, caller, variable in calls:
        expected = json.loads(env(callee)[f"{callee.upper()}_SERVICE_TOKENS"]).get(caller)
        if expected is None or env(caller).get(variable) != expected:
            problems.append(f'{callee}: its SERVICE_TOKENS has not {caller}\'s {variable} under "{caller}"')
    return problems


def dev_database_problems(docs: list[Doc]) -> list[str]:
    """Each service's DATABASE_URL is its in-cluster database: that Service and port, and the role,
    password and database the PostgreSQL container was initialised with."""
    problems = []
    for service in SERVICES:
        url = urlsplit(environment(docs, container_of(docs, "Deployment", service))[f"{service.upper()}_DATABASE_URL"])
        database = f"{service}-postgres"
        postgres = environment(docs, container_of(docs, "StatefulSet", database))
        ports = {p["port"] for p in named(docs, "Service", database)["spec"]["ports"]}
        actual = (url.hostname, url.port, url.username, url.password, url.path.lstrip("/"))
        expected = (database, 5432, postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
        if actual != expected or url.port not in ports:
            problems.append(f"{service}: DATABASE_URL {url.geturl()} is not its in-cluster database {database}")
    return problems


def image_problems(docs: list[Doc]) -> list[str]:
    """Every image pinned: the platform's by release tag or digest, one release throughout, each
    workload on its own component's image (the Jobs on their service's); the others by exact version."""
    problems, releases = [], set()
    for doc, pod in workloads(docs):
        for container in containers(pod):
            at, image = where(doc, container), container["image"]
            parts = IMAGE.fullmatch(image)
            if parts is None or (parts["tag"] in (None, "latest") and parts["digest"] is None):
                problems.append(f"{at}: image {image} is not pinned")
            elif parts["repository"].startswith(REGISTRY + "/"):
                component = (module_of(container) or "").removesuffix("_svc")
                if parts["repository"] != f"{REGISTRY}/{component}":
                    problems.append(f"{at}: runs {component} from {image}")
                releases.add(image.removeprefix(parts["repository"]))
            elif parts["digest"] is None and not re.fullmatch(
                PINNED_TAG.get(parts["repository"], r"\d+\.\d+\.\d+\S*"), parts["tag"]
            ):
                problems.append(f"{at}: image {image} is not pinned to an exact version")
    if len(releases) > 1:
        problems.append(f"the platform's images are of different releases: {sorted(releases)}")
    return problems


def test_base_holds_no_secret() -> None:
    assert no_secret_problems(render(BASE)) == []


def test_prod_holds_no_secret_and_expects_the_operators() -> None:
    docs = render(PROD)
    assert no_secret_problems(docs) == []
    assert reference_problems(docs, provided=None) == []


def test_dev_generates_every_secret_it_reads_but_envoys_certificate() -> None:
    docs = render(DEV)
    assert reference_problems(docs, provided=frozenset(secrets_read(docs)) - OPERATOR_SECRETS) == []
    assert secrets_read(docs) & OPERATOR_SECRETS == OPERATOR_SECRETS
    placeholders = [v for secret in secret_data(docs).values() for v in secret.values()]
    public = [v for v in placeholders if "replace-me" in v or urlsplit(v).hostname == "mail.example.com"]
    assert public == placeholders, "dev Secrets hold public placeholders only"


@per_overlay
def test_every_variable_names_a_setting(overlay: str) -> None:
    assert setting_name_problems(overlay_docs(overlay)) == []


def test_dev_environment_passes_production_validation() -> None:
    assert settings_problems(render(DEV)) == []


def test_dev_services_use_their_in_cluster_databases() -> None:
    assert dev_database_problems(render(DEV)) == []


@per_overlay
def test_every_image_is_pinned(overlay: str) -> None:
    assert image_problems(overlay_docs(overlay)) == []


def test_prod_pins_a_release() -> None:
    docs = render(PROD)
    images = {c["image"] for _, c, _ in billing_containers(docs)}
    assert {i.partition(":")[0].partition("@")[0] for i in images} == {
        f"{REGISTRY}/{name}" for name in (*SERVICES, "gateway")
    }
    assert all(re.fullmatch(r"[a-z./-]+" + RELEASE, image) for image in images), images


# --- the checks can fail ---------------------------------------------------------------------------


def _secret_in_base(docs: list[Doc]) -> None:
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops", "namespace": "billing"}})


def _literal_token(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "GATEWAY_SERVICE_TOKEN", "value": "x" * 40})


# Shaped like a Stripe live key (what the check must catch), built here so that no key-shaped literal is
# committed; it is no key of any account.
LIVE_KEY_SHAPE = "_".join(("sk", "live", "0" * 24))


def _stripe_key_in_a_config_map(docs: list[Doc]) -> None:
    next(d for d in of_kind(docs, "ConfigMap") if "PAYMENTS_STRIPE_API_BASE" in d["data"])["data"]["PAYMENTS_X"] = (
        LIVE_KEY_SHAPE
    )


def _database_url_literal(docs: list[Doc]) -> None:
    container = named(docs, "Job", "credits-migrate")["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "CREDITS_DB", "value": "postgresql://credits:hunter2@db:5432/credits"})


def _missing_secret_key(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("gateway-secrets"))
    del secret["data"]["JWT_SECRET"]


def _missing_config_map(docs: list[Doc]) -> None:
    docs.remove(next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("envoy-config")))


def _misspelt_variable(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]
    next(var for var in container["env"] if var["name"] == "CREDITS_GRPC_PORT")["name"] = "CREDITS_GRPC_PRT"


def _misspelt_config_key(docs: list[Doc]) -> None:
    config = next(d for d in of_kind(docs, "ConfigMap") if "SUBSCRIPTIONS_MAIL_FROM" in d["data"])
    config["data"]["SUBSCRIPTIONS_MAIL_FORM"] = config["data"].pop("SUBSCRIPTIONS_MAIL_FROM")


def _short_token(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("gateway-secrets"))
    secret["data"]["JWT_SECRET"] = base64.b64encode(b"too-short").decode()


def _gateway_unknown_to_payments(docs: list[Doc]) -> None:
    secret = next(doc for doc in of_kind(docs, "Secret") if doc["metadata"]["name"].startswith("payments-secrets"))
    tokens = json.dumps({"gateway": "another-token-long-enough-for-production-0000"})
    secret["data"]["SERVICE_TOKENS"] = base64.b64encode(tokens.encode()).decode()


def _wrong_credits_token(docs: list[Doc]) -> None:
    secret = next(d for d in of_kind(docs, "Secret") if d["metadata"]["name"].startswith("subscriptions-secrets"))
    secret["data"]["CREDITS_TOKEN"] = base64.b64encode(b"replace-me-a-token-credits-does-not-know-000").decode()


def _wrong_database_password(docs: list[Doc]) -> None:
    secret = next(d for d in of_kind(docs, "Secret") if d["metadata"]["name"].startswith("payments-postgres-"))
    secret["data"]["POSTGRES_PASSWORD"] = base64.b64encode(b"replace-me-another-password").decode()


def _shared_image(docs: list[Doc]) -> None:
    named(docs, "Job", "credits-migrate")["spec"]["template"]["spec"]["containers"][0]["image"] = (
        f"{REGISTRY}/gateway:0.1.0"
    )


def _latest_image(docs: list[Doc]) -> None:
    named(docs, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]["image"] = (
        f"{REGISTRY}/payments:latest"
    )


def _two_releases(docs: list[Doc]) -> None:
    container = named(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].rpartition(":")[0] + ":9.9.9"


def _floating_envoy(docs: list[Doc]) -> None:
    named(docs, "Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "envoyproxy/envoy:distroless-dev"
    )


def _floating_postgres(docs: list[Doc]) -> None:
    named(docs, "StatefulSet", "credits-postgres")["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:16"


def _dev_provided(docs: list[Doc]) -> list[str]:
    return reference_problems(docs, provided=frozenset(secrets_read(docs)) - OPERATOR_SECRETS)


Check = Callable[[list[Doc]], list[str]]
MUTATIONS: dict[str, tuple[str, Callable[[list[Doc]], None], Check]] = {
    "Secret object in the base": (BASE, _secret_in_base, no_secret_problems),
    "literal token in the base": (BASE, _literal_token, no_secret_problems),
    "Stripe key in a ConfigMap": (PROD, _stripe_key_in_a_config_map, no_secret_problems),
    "database URL with its password as a literal": (PROD, _database_url_literal, no_secret_problems),
    "Secret key missing": (DEV, _missing_secret_key, _dev_provided),
    "Envoy's ConfigMap missing": (PROD, _missing_config_map, lambda docs: reference_problems(docs, provided=None)),
    "misspelt variable": (DEV, _misspelt_variable, setting_name_problems),
    "misspelt ConfigMap key": (PROD, _misspelt_config_key, setting_name_problems),
    "secret too short for production": (DEV, _short_token, settings_problems),
    "gateway token unknown to a service": (DEV, _gateway_unknown_to_payments, settings_problems),
    "subscriptions' credits token unknown to credits": (DEV, _wrong_credits_token, settings_problems),
    "database password not the database's": (DEV, _wrong_database_password, dev_database_problems),
    "Job on another component's image": (DEV, _shared_image, image_problems),
    "latest tag": (PROD, _latest_image, image_problems),
    "two releases": (PROD, _two_releases, image_problems),
    "Envoy by a floating tag": (DEV, _floating_envoy, image_problems),
    "PostgreSQL by its major version": (DEV, _floating_postgres, image_problems),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_config_checks_find_a_broken_manifest(mutation: str) -> None:
    target, breaks, check = MUTATIONS[mutation]
    docs = render(target)
    assert check(docs) == [], "the check must pass on the real manifests first"
    breaks(docs)
    assert check(docs) != []

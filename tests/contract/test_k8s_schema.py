"""Every kustomize target under deploy/k8s renders offline and passes strict schema validation against
the oldest Kubernetes the manifests support and the newest schema kubernetes-validate ships."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.contract.k8s_render import BASE, DEV, PROD, Doc, named, render, where

# Native gRPC probes and the preStop sleep action are on by default from 1.30.
SCHEMA_VERSIONS = ("1.30.0", latest_version())


@functools.cache
def _validate(text: str, version: str) -> str | None:
    """The problem with one object (as JSON), or None; cached, as every target shares most objects."""
    doc = json.loads(text)
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return f"{where(doc)} against {version}: {path}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError as error:
        return f"{where(doc)}: {error.message}"
    return None


def schema_problems(docs: list[Doc], versions: tuple[str, ...] = SCHEMA_VERSIONS) -> list[str]:
    """kubernetes-validate in strict mode; an unknown kind is a problem too (its CLI only warns)."""
    found = (_validate(json.dumps(doc, sort_keys=True), version) for doc in docs for version in versions)
    return [problem for problem in found if problem]


@pytest.mark.parametrize("target", [BASE, DEV, PROD])
def test_target_passes_strict_schema_validation(target: str) -> None:
    docs = render(target)
    assert docs
    assert schema_problems(docs) == []


def _misspelt_field(docs: list[Doc]) -> None:
    named(docs, "Deployment", "credits")["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}


def _hpa_v1_field(docs: list[Doc]) -> None:
    named(docs, "HorizontalPodAutoscaler", "gateway")["spec"]["targetCPUUtilizationPercentage"] = 70


def _unknown_kind(docs: list[Doc]) -> None:
    docs.append({"apiVersion": "billing.example.com/v1", "kind": "Ledger", "metadata": {"name": "x"}})


MUTATIONS: dict[str, Callable[[list[Doc]], None]] = {
    "misspelt field": _misspelt_field,
    "autoscaling/v1 field in a v2 HorizontalPodAutoscaler": _hpa_v1_field,
    "unknown kind": _unknown_kind,
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_schema_check_finds_a_broken_manifest(mutation: str) -> None:
    docs = render(DEV)
    assert schema_problems(docs) == [], "the check must pass on the real manifests first"
    MUTATIONS[mutation](docs)
    assert schema_problems(docs) != []

"""The Dockerfiles (deploy/docker) agree with the manifests that run their images, without building them:
pinned bases; the pods' user; the Deployment's command and ports; only the repository paths the component
needs, which suffice to import its entry module and make `pip install .` install just its packages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.contract.dockerfiles import (
    DOCKER,
    ROOT,
    copy_into,
    env_of,
    exec_form,
    import_problems,
    layout,
    parse,
    wheel_files,
)
from tests.contract.k8s_render import (
    DEV,
    PROD,
    REGISTRY,
    Doc,
    command_of,
    containers,
    module_of,
    overlay_docs,
    per_overlay,
    render,
    where,
    workloads,
)

# Image name -> the module its Deployment runs.
IMAGES = {
    "credits": "credits_svc",
    "payments": "payments_svc",
    "subscriptions": "subscriptions_svc",
    "gateway": "gateway",
}
# What every image copies besides its own package: the project metadata `pip install .` reads, the
# generated protobuf stubs and the shared package.
COMMON_SOURCES = {"pyproject.toml", "README.md", "protos/gen/python", "svckit"}
# A base image by exact version (major.minor.patch, then a variant such as -slim-bookworm), or by digest.
PINNED_BASE = re.compile(r"[a-z0-9./-]+(:\d+\.\d+\.\d+(-[a-z0-9.]+)*)?(@sha256:[0-9a-f]{64})?")


def dockerfile_text(name: str) -> str:
    return (DOCKER / f"{name}.Dockerfile").read_text()


def ignore_text(name: str) -> str:
    return (DOCKER / f"{name}.Dockerfile.dockerignore").read_text()


def runs_image(container: Doc, name: str) -> bool:
    return bool(re.fullmatch(re.escape(f"{REGISTRY}/{name}") + r"([:@].*)?", container["image"]))


def dockerfile_problems(name: str, text: str, ignore: str, docs: list[Doc]) -> list[str]:
    problems = []
    stages = parse(text)
    stage_names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        pinned = PINNED_BASE.fullmatch(stage.image) and (":" in stage.image or "@" in stage.image)
        if stage.image not in stage_names and not pinned:
            problems.append(f"{name}: base image {stage.image} is not pinned to an exact version")
    final = stages[-1]
    uid, _, gid = (final.last("USER") or "").partition(":")
    if not uid.isdigit() or int(uid) == 0 or (gid and not gid.isdigit()):
        problems.append(f"{name}: the final stage's USER {final.last('USER')!r} is not a numeric non-root user")
    using = [(doc, pod, c) for doc, pod in workloads(docs) for c in containers(pod) if runs_image(c, name)]
    deployments = [(doc, c) for doc, _, c in using if doc["kind"] == "Deployment"]
    if len(deployments) != 1:
        return [*problems, f"{name}: run by {len(deployments)} Deployments, expected one"]
    deployment, server = deployments[0]
    for doc, pod, container in using:
        context = pod.get("securityContext", {}) | container.get("securityContext", {})
        if str(context.get("runAsUser")) != uid or (gid and str(context.get("runAsGroup")) != gid):
            problems.append(f"{name}: USER {uid}:{gid}, but {where(doc, container)} runs as {context.get('runAsUser')}")
        if module_of(container) != IMAGES[name]:
            problems.append(f"{name}: {where(doc, container)} runs {module_of(container)}, not {IMAGES[name]}")
    command = [*(exec_form(final.last("ENTRYPOINT")) or []), *(exec_form(final.last("CMD")) or [])]
    if command != command_of(server):
        problems.append(f"{name}: runs {command} (exec form), but {where(deployment)} runs {command_of(server)}")
    exposed = {int(port.split("/")[0]) for args in final.all("EXPOSE") for port in args.split()}
    if exposed != {port["containerPort"] for port in server.get("ports", [])}:
        problems.append(f"{name}: EXPOSE {sorted(exposed)}, but {where(deployment)} listens on {server.get('ports')}")
    if env_of(final).get("PYTHONDONTWRITEBYTECODE") != "1":
        problems.append(f"{name}: PYTHONDONTWRITEBYTECODE is not 1 (the root filesystem is read-only)")
    sources = {source for stage in stages for source in layout(stage)}
    if sources != COMMON_SOURCES | {IMAGES[name]}:
        problems.append(f"{name}: copies {sorted(sources)}, expected {sorted(COMMON_SOURCES | {IMAGES[name]})}")
    lines = [line.strip() for line in ignore.splitlines() if line.strip() and not line.startswith("#")]
    if lines[:1] != ["*"] or {line[1:] for line in lines if line.startswith("!")} != sources:
        problems.append(f"{name}.Dockerfile.dockerignore does not admit exactly what it copies ({sorted(sources)})")
    return problems


@per_overlay
def test_every_platform_image_has_its_dockerfile(overlay: str) -> None:
    images = {c["image"] for _, pod in workloads(overlay_docs(overlay)) for c in containers(pod)}
    built = {re.split(r"[:@]", image)[0].removeprefix(f"{REGISTRY}/") for image in images if image.startswith(REGISTRY)}
    assert built == set(IMAGES)
    assert {path.name.removesuffix(".Dockerfile") for path in DOCKER.glob("*.Dockerfile")} == built


@per_overlay
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_agrees_with_the_manifests(overlay: str, name: str) -> None:
    assert dockerfile_problems(name, dockerfile_text(name), ignore_text(name), overlay_docs(overlay)) == []


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_copied_files_import_the_entry_module(name: str, tmp_path: Path) -> None:
    copy_into(parse(dockerfile_text(name))[0], tmp_path)
    assert import_problems(tmp_path, IMAGES[name]) == []


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_pip_installs_only_the_images_packages(name: str, tmp_path: Path) -> None:
    copy_into(parse(dockerfile_text(name))[0], tmp_path / "src")
    installed = wheel_files(tmp_path / "src", tmp_path / "wheel")
    assert {path.split("/")[0] for path in installed} == {IMAGES[name], "svckit", "billing"}
    # Every module, migrations included, and the package data (the gateway's pages, the catalogs).
    for package in (IMAGES[name], "svckit"):
        shipped = {
            str(path.relative_to(ROOT))
            for path in (ROOT / package).rglob("*")
            if path.suffix in (".py", ".mako", ".toml", ".html", ".js", ".css") and "__pycache__" not in path.parts
        }
        assert shipped - installed == set(), f"{package}: not installed"


# --- the checks can fail ---------------------------------------------------------------------------

Edit = Callable[[str], str]
MUTATIONS: dict[str, tuple[str, Edit, Edit]] = {
    "floating base image": (
        "credits",
        lambda t: t.replace("python:3.11.11-slim-bookworm AS", "python:3.11-slim AS"),
        str,
    ),
    "latest base image": (
        "payments",
        lambda t: t.replace("FROM python:3.11.11-slim-bookworm\n", "FROM python:latest\n"),
        str,
    ),
    "root user": ("gateway", lambda t: t.replace("USER 10001:10001", "USER 0"), str),
    "user by name": ("subscriptions", lambda t: t.replace("USER 10001:10001", "USER billing"), str),
    "another uid than the pods'": ("credits", lambda t: t.replace("USER 10001:10001", "USER 10002:10002"), str),
    "another port": ("gateway", lambda t: t.replace("EXPOSE 8080", "EXPOSE 8000"), str),
    "another module": ("payments", lambda t: t.replace('"payments_svc", "serve"]', '"credits_svc", "serve"]'), str),
    "shell-form command": (
        "credits",
        lambda t: t.replace('CMD ["python", "-m", "credits_svc", "serve"]', "CMD python -m credits_svc serve"),
        str,
    ),
    "bytecode written at run time": (
        "subscriptions",
        lambda t: t.replace("PYTHONDONTWRITEBYTECODE=1", "PYTHONDONTWRITEBYTECODE=0"),
        str,
    ),
    "another service's package": (
        "gateway",
        lambda t: t.replace("COPY gateway gateway", "COPY gateway gateway\nCOPY credits_svc credits_svc"),
        str,
    ),
    "context admitting more": ("payments", str, lambda t: t + "!credits_svc\n"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_dockerfile_checks_find_a_broken_dockerfile(mutation: str) -> None:
    name, edit_dockerfile, edit_ignore = MUTATIONS[mutation]
    docs, text, ignore = render(PROD), dockerfile_text(name), ignore_text(name)
    assert dockerfile_problems(name, text, ignore, docs) == [], "the check must pass on the real files first"
    assert edit_dockerfile(text) != text or edit_ignore(ignore) != ignore, "the mutation must change something"
    assert dockerfile_problems(name, edit_dockerfile(text), edit_ignore(ignore), docs) != []


def test_dockerfile_check_finds_pods_of_another_user() -> None:
    docs = render(DEV)
    assert dockerfile_problems("credits", dockerfile_text("credits"), ignore_text("credits"), docs) == []
    for doc, pod in workloads(docs):
        if doc["metadata"]["name"] == "credits-migrate":
            pod["securityContext"]["runAsUser"] = 1000
    assert dockerfile_problems("credits", dockerfile_text("credits"), ignore_text("credits"), docs) != []


@pytest.mark.parametrize("missing", ["svckit", "protos/gen/python"])
def test_the_import_fails_without_a_needed_directory(missing: str, tmp_path: Path) -> None:
    copy_into(parse(dockerfile_text("gateway"))[0], tmp_path, leave_out=frozenset({missing}))
    assert import_problems(tmp_path, "gateway") != []


def test_an_import_from_the_checkout_is_refused(tmp_path: Path) -> None:
    copy_into(parse(dockerfile_text("gateway"))[0], tmp_path)
    problems = import_problems(tmp_path, "gateway", before=(ROOT,))
    assert any("outside the image's files" in problem for problem in problems), problems


def test_the_wheel_lacks_what_is_not_copied(tmp_path: Path) -> None:
    copy_into(parse(dockerfile_text("gateway"))[0], tmp_path / "src", leave_out=frozenset({"svckit"}))
    installed = wheel_files(tmp_path / "src", tmp_path / "wheel")
    assert {path.split("/")[0] for path in installed} == {"gateway", "billing"}

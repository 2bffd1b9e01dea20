"""Reading the Dockerfiles of deploy/docker without a Docker engine: stages, their instructions, and
what the build copies from the repository; and trying, in a scratch directory holding only those
copies, whether the image's entry module imports and what `pip install .` would install."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
# Never part of an image, whatever a COPY names (the .dockerignore files exclude them too).
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [args for key, args in self.instructions if key == keyword]
        return found[-1] if found else None

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    uncommented = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    logical = re.sub(r"\\\n", " ", uncommented)
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            stages.append(Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif not stages:
            raise ValueError(f"{keyword} before FROM")
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str | None) -> list[str] | None:
    """CMD/ENTRYPOINT in JSON (exec) form, or None."""
    if args is None or not args.startswith("["):
        return None
    value = json.loads(args)
    return [str(item) for item in value]


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from another stage)."""
    found = []
    for args in stage.all("COPY"):
        words = args.split()
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        found.append((words[:-1], words[-1]))
    return found


def layout(stage: Stage) -> dict[str, str]:
    """Source path in the repository -> path inside the build's working directory."""
    placed = {}
    for sources, destination in copies(stage):
        for source in sources:
            into_dir = len(sources) > 1 or destination.endswith("/") or destination in (".", "./")
            target = PurePosixPath(destination) / PurePosixPath(source).name if into_dir else PurePosixPath(destination)
            placed[source] = str(target)
    return placed


def copy_into(stage: Stage, scratch: Path, leave_out: frozenset[str] = frozenset()) -> None:
    """Lay the build stage's COPY sources out in `scratch` as the build would (less `leave_out`)."""
    for source, target in layout(stage).items():
        if source in leave_out:
            continue
        origin, destination = ROOT / source, scratch / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination, ignore=NOT_COPIED)
        else:
            shutil.copy2(origin, destination)


def package_roots(scratch: Path) -> list[Path]:
    """Where pyproject.toml finds packages (tool.setuptools.packages.find.where), inside `scratch`."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [scratch / where for where in pyproject["tool"]["setuptools"]["packages"]["find"]["where"]]


IMPORT_ALL = """
import importlib, json, pkgutil, sys
scratch, module, roots, site = sys.argv[1], sys.argv[2], sys.argv[3:-1], sys.argv[-1]
sys.path[:0] = [*roots, site]
problems = []
try:
    importlib.import_module(module + ".__main__")
    for package in (module, "svckit"):
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            if ".migrations" not in info.name:
                importlib.import_module(info.name)
except Exception as error:
    problems.append(f"import {module}: {type(error).__name__}: {error}")
for name, loaded in list(sys.modules.items()):
    path = getattr(loaded, "__file__", None) or ""
    if path and not path.startswith(site) and not path.startswith(sys.base_prefix) and not path.startswith(scratch):
        problems.append(f"{name} imported from {path}, outside the image's files")
print(json.dumps(problems))
"""


def import_problems(scratch: Path, module: str, before: tuple[Path, ...] = ()) -> list[str]:
    """Import `module`'s entry point and every module of it and of svckit with only the copied files on
    the path, besides the installed third-party packages; any module found elsewhere (`before` puts
    directories ahead of the copies) is a problem. `-I -S`: no current directory, no .pth files (the
    editable install's would bring the real checkout back)."""
    site = sysconfig.get_paths()["purelib"]
    roots = [str(root) for root in (*before, *package_roots(scratch))]
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_ALL, str(scratch), module, *roots, site],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        return [f"import {module} failed: {result.stderr[-2000:]}"]
    problems: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return problems


def wheel_files(scratch: Path, out: Path) -> set[str]:
    """The files `pip install .` would install from `scratch`, from a wheel built offline."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}

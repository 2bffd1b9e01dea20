"""The contracts: buf lint and format clean, generated stubs fresh, error reasons in step with the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from billing.common.v1 import errors_pb2
from svckit.errors import Reason

ROOT = Path(__file__).resolve().parents[2]
BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def buf() -> str:
    assert BUF, "buf is not installed: it comes with the dev dependencies (buf-bin)"
    return BUF


def test_protos_pass_buf_lint(buf: str) -> None:
    result = run(buf, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_protos_are_buf_formatted(buf: str) -> None:
    result = run(buf, "format", "-d", "--exit-code")
    assert result.returncode == 0, "run `buf format -w`:\n" + result.stdout + result.stderr


def test_generated_stubs_are_fresh() -> None:
    result = run(sys.executable, "scripts/gen_protos.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_error_reasons_match_the_proto_enum() -> None:
    in_proto = {
        value.name.removeprefix("ERROR_REASON_")
        for value in errors_pb2.DESCRIPTOR.enum_types_by_name["ErrorReason"].values
        if value.number != 0
    }
    assert in_proto == {reason.value for reason in Reason}

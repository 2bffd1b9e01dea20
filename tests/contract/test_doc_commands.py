"""Every command shown in README.md and docs/*.md runs as written, or is allow-listed here with a reason.

The convention for the documents:

- A fenced block tagged `sh` or `bash` holds commands; every other block (`text`, `json`, `yaml`, `sql`,
  untagged) is output, a picture or configuration and is never run. A `console` block would mark commands
  with a leading `$ `; none is used today.
- The README's ten-minute tour is the `sh` blocks between `<!-- doc-commands:tour:start -->` and
  `<!-- doc-commands:tour:end -->`. They run, in order, as one shell session against a real stack that
  this test starts with `scripts/run_local.py` (what `make run` runs). Every other block that talks to the
  local stack (it names `127.0.0.1:8080`, `$USER_TOKEN` or `$ADMIN_TOKEN`) and holds no allow-listed
  command runs after the tour, in the same session, so it can use the tour's tokens and purchases.
- Every other block runs as a whole, as written, from the repository's root, when each of its commands
  matches a RUNNABLE rule; when any command matches an ALLOWED rule (no cluster here, no Stripe account,
  recursive, minutes long), the block is not run, and its `make` targets must exist. A command that
  matches no rule fails the test: run it, or add it to a rule with its reason.
- Every block, run or not, must be valid bash (`bash -n`).

Only two things are rewritten before running, so that the test never touches a developer's own stack or
data: the gateway's address `127.0.0.1:8080` becomes the test stack's, and `sqlite:///var/` database URLs
point into a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_TAGS = {"sh", "bash", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
TOUR = re.compile(r"<!-- doc-commands:tour:start -->(.*?)<!-- doc-commands:tour:end -->", re.DOTALL)
LOCAL_GATEWAY = "127.0.0.1:8080"
LOCAL_SANDBOX = "127.0.0.1:12111"
STACK_MARKERS = (LOCAL_GATEWAY, "$USER_TOKEN", "$ADMIN_TOKEN")
STACK_START_SECONDS = 90
DEMO_CREDITS = 500

# Commands run as written (the block they are in runs when all its commands are runnable).
RUNNABLE: list[tuple[str, str]] = [
    (r"make (protos-check|docs-check|lint|migrate)", "quick checks of the committed files"),
    (r"\.venv/bin/python -m (credits_svc|payments_svc|subscriptions_svc|gateway|stripe_sandbox) --help", "help"),
    (
        r"\.venv/bin/python -m (credits_svc|payments_svc|subscriptions_svc) (migrate|check-ledger|rollup|expire|seal)",
        "temp db",
    ),
    (r"export (CREDITS|PAYMENTS|SUBSCRIPTIONS)_DATABASE_URL=sqlite:///var/\S+", "pointed at a temporary directory"),
    (r"mkdir -p var(/[\w.-]+)*", "under var/, ignored by git"),
    (r"openssl req -x509 .*-keyout var/\S+ -out var/\S+", "a throwaway certificate under var/"),
    (r"sed \S+ deploy/envoy/envoy\.yaml > var/\S+", "writes under var/"),
    (r"\.venv/bin/envoy --mode validate -c var/\S+", "validates the edge configuration offline"),
    (r"\.venv/bin/kubectl kustomize deploy/k8s/\S+ > var/\S+", "renders offline"),
    (r"\.venv/bin/kubernetes-validate --strict var/\S+", "validates offline"),
    # The tour and the other blocks against the local stack: run against the test's own stack.
    (r"(export )?[A-Z_]+=\$\(.*\)", "a value taken from an earlier answer"),
    (r"[A-Z_]+='[^']*'", "a request body"),
    (r"curl .*", "against the test stack (a block that names the local stack) or skipped with its block"),
    (r"echo \S+", "prints"),
    (r"sleep \d+", "lets the sandbox's webhooks arrive"),
]

# Commands never run here, each with the reason. A block holding one of them is checked with `bash -n` only.
ALLOWED: list[tuple[str, str]] = [
    (r"make run", "starts the stack and waits for Ctrl-C; the tour runs against scripts/run_local.py, its body"),
    (r"make test( PYTEST_ARGS=.*)?", "recursive: it runs this test"),
    (r"make (bench|bench-stack|bench-webhooks|bench-dashboard)( BENCH_ARGS=.*)?", "benchmarks take minutes"),
    (r"\.venv/bin/pytest tests/.*", "recursive or already part of `make test`"),
    (r"kubectl .*", "needs a Kubernetes cluster"),
    (r"docker .*|kind .*", "needs a Docker daemon, a registry or a kind cluster"),
    (r"openssl req .*", "makes the certificate for the cluster step it belongs to"),
    (r"VERSION=[\w.]+", "the image tag of the Docker build that follows"),
    (r"for .*; do.*|for .*; do|done", "the loop around commands allowed here"),
    (r"curl https://api\.stripe\.com/.*", "needs a live Stripe secret key and the internet"),
    (r"stripe listen .*", "needs the Stripe CLI, a Stripe account and the internet"),
    (r"export PAYMENTS_STRIPE_SECRET_KEY=sk_test_\.\.\..*", "a placeholder for your Stripe test key"),
    (
        r"export GATEWAY_STRIPE_WEBHOOK_SECRETS='\[\"whsec_\.\.\.\"\]'.*",
        "a placeholder for the secret `stripe listen` prints",
    ),
]


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    tag: str
    text: str
    in_tour: bool

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        """Its commands: continuation lines joined, comments and blank lines dropped."""
        lines = self.text.splitlines()
        if self.tag == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        joined: list[str] = []
        pending = ""
        for line in lines:
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            joined.append(uncomment(pending + stripped))
            pending = ""
        if pending:
            joined.append(uncomment(pending))
        return [command for command in joined if command]

    def script(self) -> str:
        return "\n".join(self.commands()) if self.tag == "console" else self.text

    @property
    def uses_stack(self) -> bool:
        """Run against the test's stack: the tour, and any other block naming the local stack that can run."""
        named = any(marker in self.text for marker in STACK_MARKERS)
        return self.in_tour or (named and not is_allowed(self))


def uncomment(command: str) -> str:
    """The command without a trailing `# comment` (outside quotes)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return command.strip()
    if not words:
        return ""
    position = command.find(" #")
    return command[:position].strip() if position >= 0 and "#" not in words[-1] else command.strip()


def blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        tours = [(m.start(), m.end()) for m in TOUR.finditer(text)]
        for match in FENCE.finditer(text):
            tag = match.group(1)
            if tag not in COMMAND_TAGS:
                continue
            in_tour = any(start <= match.start() < end for start, end in tours)
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(doc, line, tag, match.group(2), in_tour))
    return found


def rule_for(command: str, rules: list[tuple[str, str]]) -> str | None:
    for pattern, reason in rules:
        if re.fullmatch(pattern, command):
            return reason
    return None


def is_allowed(block: Block) -> bool:
    return any(rule_for(command, ALLOWED) is not None for command in block.commands())


def rewrite(script: str, databases: Path, gateway: str = LOCAL_GATEWAY, sandbox: str = LOCAL_SANDBOX) -> str:
    script = script.replace(LOCAL_GATEWAY, gateway).replace(LOCAL_SANDBOX, sandbox)
    return script.replace("sqlite:///var/", f"sqlite:///{databases}/")


def test_the_documents_show_commands() -> None:
    found = blocks()
    assert len(found) > 20
    assert sum(block.in_tour for block in found) >= 5, "README.md's tour blocks lost their markers"


def test_every_command_is_run_or_allowed_with_a_reason() -> None:
    unknown = [
        f"{block.where}: {command}"
        for block in blocks()
        for command in block.commands()
        if rule_for(command, ALLOWED) is None and rule_for(command, RUNNABLE) is None
    ]
    assert not unknown, (
        "commands in the docs that are neither run nor allow-listed in tests/contract/test_doc_commands.py "
        "(make them runnable, or add a rule with its reason):\n" + "\n".join(unknown)
    )


def test_no_tour_command_is_allowed_away() -> None:
    skipped = [f"{b.where}: {c}" for b in blocks() if b.uses_stack for c in b.commands() if rule_for(c, ALLOWED)]
    assert not skipped, "the tour and the local-stack blocks must run in full:\n" + "\n".join(skipped)


@pytest.mark.parametrize("block", blocks(), ids=lambda block: block.where)
def test_every_block_is_valid_bash(block: Block) -> None:
    done = subprocess.run(["bash", "-n"], input=block.script(), capture_output=True, text=True)
    assert done.returncode == 0, f"{block.where}: {done.stderr}"


def test_the_make_targets_the_docs_name_exist() -> None:
    targets = {
        match.group(1)
        for block in blocks()
        for command in block.commands()
        if (match := re.match(r"make ([\w-]+)", command))
    }
    assert targets
    for target in sorted(targets):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"make {target}: {done.stderr}"


@pytest.mark.parametrize(
    "block", [b for b in blocks() if not b.uses_stack and not is_allowed(b)], ids=lambda block: block.where
)
def test_the_runnable_blocks_run_as_written(block: Block, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = rewrite(block.script(), tmp_path)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{block.where} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"


# The tour, against a stack started the way `make run` starts it -------------------------------------------------


@dataclass
class LocalStack:
    url: str
    sandbox: str
    banner: str


def read_until(process: subprocess.Popen[bytes], marker: str, seconds: float) -> str:
    """What the process printed, up to and including `marker` (read unbuffered: it prints its banner at once)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            seen += chunk
            if marker.encode() in seen:
                return seen.decode()
            if not chunk and process.poll() is not None:
                break
    raise AssertionError(f"scripts/run_local.py did not print {marker!r} within {seconds}s:\n{seen.decode()}")


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("local-stack")
    gateway_port = free_port()
    ports = {name: str(free_port()) for name in ("CREDITS", "PAYMENTS", "SUBSCRIPTIONS", "SANDBOX")}
    targets = {name: f"127.0.0.1:{ports[name]}" for name in ("CREDITS", "PAYMENTS", "SUBSCRIPTIONS")}
    env = {name: value for name, value in os.environ.items() if not name.startswith(("GATEWAY_", "STRIPE_"))}
    env.pop("PAYMENTS_STRIPE_SECRET_KEY", None)
    env.update(
        GATEWAY_PORT=str(gateway_port),
        GATEWAY_ALLOWED_REDIRECT_ORIGINS=json.dumps([f"http://127.0.0.1:{gateway_port}"]),
        GATEWAY_CREDITS_TARGET=targets["CREDITS"],
        GATEWAY_PAYMENTS_TARGET=targets["PAYMENTS"],
        GATEWAY_SUBSCRIPTIONS_TARGET=targets["SUBSCRIPTIONS"],
        CREDITS_GRPC_PORT=ports["CREDITS"],
        PAYMENTS_GRPC_PORT=ports["PAYMENTS"],
        SUBSCRIPTIONS_GRPC_PORT=ports["SUBSCRIPTIONS"],
        PAYMENTS_CREDITS_TARGET=targets["CREDITS"],
        SUBSCRIPTIONS_CREDITS_TARGET=targets["CREDITS"],
        SUBSCRIPTIONS_PAYMENTS_TARGET=targets["PAYMENTS"],
        STRIPE_SANDBOX_PORT=ports["SANDBOX"],
        SUBSCRIPTIONS_MAIL_ENDPOINT=f"file:{data / 'mailbox'}",
        **{f"{s}_DATABASE_URL": f"sqlite:///{data / (s.lower() + '.db')}" for s in targets},
    )
    process = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        start_new_session=True,
    )
    try:
        banner = read_until(process, "Ctrl-C stops everything", STACK_START_SECONDS)
        yield LocalStack(f"http://127.0.0.1:{gateway_port}", f"127.0.0.1:{ports['SANDBOX']}", banner)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def get(stack: LocalStack, path: str, token: str) -> Any:
    request = urllib.request.Request(stack.url + path, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the test's own stack)
        return json.load(response)


def poll(what: str, probe: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: never true; last {last!r}")


def test_the_tour_runs_end_to_end(local_stack: LocalStack) -> None:
    banner = local_stack.banner
    assert "export USER_TOKEN=" in banner, banner
    assert "export ADMIN_TOKEN=" in banner, banner
    assert f"({DEMO_CREDITS} credits)" in banner, banner
    stack_blocks = [b for b in blocks() if b.uses_stack]
    tour = [b for b in stack_blocks if b.in_tour]
    others = [b for b in stack_blocks if not b.in_tour]
    gateway = local_stack.url.removeprefix("http://")
    # A marker line after each block, to tell which block printed what.
    script = "\n".join(
        f"{rewrite(b.script(), Path('/nonexistent'), gateway, local_stack.sandbox)}\necho '@@ {b.where}'"
        for b in [*tour, *others]
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    output = done.stdout
    assert done.returncode == 0, f"the tour failed ({done.returncode}):\n{output}\n{done.stderr}"
    for block in stack_blocks:
        assert f"@@ {block.where}" in output, f"{block.where} did not run:\n{output}"
    assert '"reason"' not in output, f"a command answered a problem:\n{output}"
    assert '"error"' not in output, f"the sandbox answered an error:\n{output}"
    # Both sandbox payments were accepted: the hosted page redirected to the success URL.
    assert len(re.findall(r"(?<![\d.])303\n", output)) >= 2, output
    assert time.monotonic() - started < 120

    tokens = json.loads(
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "gateway", "dev-tokens"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    user, admin = tokens["user"]["token"], tokens["admin"]["token"]
    # 500 to start with, 100 bought, 1,000 for the Starter plan's first period (less any refund an
    # admin-guide block made, which takes credits back).
    subscriptions = poll(
        "the Starter subscription is active",
        lambda: [
            s
            for s in get(local_stack, "/api/subscriptions/demo-user", user)["subscriptions"]
            if s["plan_id"] == "starter" and s["status"] == "active"
        ],
    )
    assert len(subscriptions) == 1
    balance = poll(
        "the credits arrived",
        lambda: (b := get(local_stack, "/api/credits/balance", user)["balance"]) >= DEMO_CREDITS + 1000 and b,
    )
    assert DEMO_CREDITS + 1000 <= balance <= DEMO_CREDITS + 1100
    dashboard = get(local_stack, "/api/admin/financial-dashboard", admin)
    assert dashboard["missing"] == []
    gross = {t["currency"]: t["gross_minor"] for t in dashboard["revenue"]["totals"]}
    assert gross.get("usd", 0) >= 500, dashboard["revenue"]
    assert dashboard["subscriptions"]["by_status"].get("active") == 1, dashboard["subscriptions"]
    assert dashboard["credits"]["granted"] >= DEMO_CREDITS + 1100, dashboard["credits"]

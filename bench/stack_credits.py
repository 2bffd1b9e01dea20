"""Spend and Grant over gRPC against raw PostgreSQL doing the same ledger writes (pgbench, same concurrency).

The baseline runs on the Credits database itself, on the service's own tables
(same indexes, constraints and triggers), on wallets of its own: per transaction
the guarded balance change (`UPDATE accounts SET balance = balance - d WHERE
code = w AND balance - d >= 0 RETURNING balance`, or the upsert a grant is), the
transfer row, its two ledger entries, and the credit lot (a grant opens one; a
spend takes from the first in consumption order and records the movement);
prepared statements, one round trip each. What the service does on top: the gRPC call, the idempotency record
(claimed before, its response stored after), Python.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import grpc

from bench.credits_bench import Figures, drive, pgbench_binary, wallet_calls
from bench.stack_common import Row, cpu_per_op, cpu_snapshot
from billing.credits.v1 import credits_pb2 as pb
from tests.support.grpc_calls import credits_stub, metadata

_TRANSFER = (
    "INSERT INTO transfers (id, kind, amount, user_id, from_account, to_account, source, reference, description,"
    " reverses_transfer_id, reversed_amount, actor, created_at)"
    " VALUES ('tr_' || replace(gen_random_uuid()::text, '-', ''), '{kind}', 1, :prefix::text || :n::text,"
    " {source_account}, {target_account}, {source}, gen_random_uuid()::text, '', NULL, 0, 'bench', now())"
    " ON CONFLICT (reference) DO NOTHING RETURNING id AS transfer_id \\gset\n"
)
_ENTRIES = (
    "INSERT INTO ledger_entries (transfer_id, account, amount, balance_after, created_at) VALUES"
    " (:transfer_id::text, {debited}, -1, {debited_after}::bigint, now()),"
    " (:transfer_id::text, {credited}, 1, {credited_after}::bigint, now());\n"
)
WALLET = "('user:' || :prefix::text || :n::text)"
_OPEN_LOT = (
    "INSERT INTO credit_lots (id, user_id, category, priority, amount, remaining, expires_at, value_minor,"
    " currency, expired_amount, expired_at, created_at)"
    " VALUES (:transfer_id::text, :prefix::text || :n::text, 'paid', 50, 1, 1, NULL, 0, NULL, 0, NULL, now());\n"
)
_TAKE_FROM_LOT = (
    "UPDATE credit_lots SET remaining = remaining - 1 WHERE id = (SELECT id FROM credit_lots"
    " WHERE user_id = :prefix::text || :n::text AND remaining > 0"
    " ORDER BY priority, expires_at, created_at, id LIMIT 1 FOR UPDATE)"
    " RETURNING id AS lot_id \\gset\n"
    "INSERT INTO lot_movements (transfer_id, lot_id, amount, position)"
    " VALUES (:transfer_id::text, :lot_id::text, -1, 0);\n"
)
SCRIPTS = {
    "Grant": "\\set n random(0, :wallets - 1)\nBEGIN;\n"
    "INSERT INTO accounts (code, kind, balance, created_at, updated_at) VALUES (" + WALLET + ", 'wallet', 1, now(),"
    " now()) ON CONFLICT (code) DO UPDATE SET balance = accounts.balance + excluded.balance,"
    " updated_at = excluded.updated_at RETURNING balance \\gset\n"
    + _TRANSFER.format(kind="grant", source_account=":sys_purchase::text", target_account=WALLET, source="'purchase'")
    + _ENTRIES.format(debited=":sys_purchase::text", debited_after="NULL", credited=WALLET, credited_after=":balance")
    + _OPEN_LOT
    + "END;\n",
    "Spend": "\\set n random(0, :wallets - 1)\nBEGIN;\n"
    "UPDATE accounts SET balance = balance - 1, updated_at = now() WHERE code = " + WALLET + " AND balance - 1 >= 0"
    " RETURNING balance \\gset\n"
    + _TRANSFER.format(kind="spend", source_account=WALLET, target_account=":sys_spend::text", source="NULL")
    + _ENTRIES.format(debited=WALLET, debited_after=":balance", credited=":sys_spend::text", credited_after="NULL")
    + _TAKE_FROM_LOT
    + "END;\n",
}


def pgbench(libpq_url: str, operation: str, prefix: str, wallets: int, seconds: float, concurrency: int) -> Figures:
    binary = pgbench_binary()
    if binary is None:
        raise SystemExit("pgbench not found (Debian: postgresql-client); the baseline needs it")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.sql"
        script.write_text(SCRIPTS[operation])
        log_prefix = Path(tmp) / "log"
        started = time.perf_counter()
        done = subprocess.run(
            [
                binary, "-n", "-M", "prepared", "-f", str(script), "-c", str(concurrency), "-j", "2",
                "-T", str(max(1, round(seconds))), "-D", f"prefix={prefix}", "-D", f"wallets={wallets}",
                # Colons in literals would be taken for variables: pgbench does not parse SQL strings.
                "-D", "sys_purchase=system:purchase", "-D", "sys_spend=system:spend",
                "-l", f"--log-prefix={log_prefix}", libpq_url,
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
        latencies = [
            int(line.split()[2]) / 1000  # microseconds -> ms
            for log in Path(tmp).glob("log*")
            for line in log.read_text().splitlines()
        ]
    return Figures(f"raw PG {operation}", len(latencies), elapsed, latencies)


async def credits_rows(
    target: str, libpq_url: str, args: argparse.Namespace, pids: Mapping[str, int]
) -> tuple[list[Row], pb.CheckLedgerResponse]:
    run = uuid.uuid4().hex[:6]
    rows: list[Row] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = credits_stub(channel)

        grant, spend = wallet_calls(stub)

        calls: dict[str, Callable[[str], Awaitable[None]]] = {"Grant": grant, "Spend": spend}
        # Fund every wallet both sides use through the service, so the ledger check covers the baseline's writes.
        await drive("warm-up", args.concurrency, args.warmup, lambda n: grant(f"g-hot-{run}"))
        for wallets in (1, args.wallets):
            for side in ("g", "raw"):
                users = [f"{side}-{wallets}-{run}-{i}" for i in range(wallets)]
                for i in range(0, wallets, 100):
                    await asyncio.gather(*(grant(user, 10**9) for user in users[i : i + 100]))

        for wallets in (1, args.wallets):
            label = "one hot wallet" if wallets == 1 else f"{wallets} wallets"
            for operation in ("Grant", "Spend"):
                raw = pgbench(libpq_url, operation, f"raw-{wallets}-{run}-", wallets, args.seconds, args.concurrency)
                users = [f"g-{wallets}-{run}-{i}" for i in range(wallets)]
                before = cpu_snapshot(pids)
                figures = await drive(
                    operation,
                    args.concurrency,
                    args.seconds,
                    lambda n, call=calls[operation], users=users: call(users[n % len(users)]),
                )
                rows.append(
                    Row(
                        f"credits {operation}, {label} (gRPC)",
                        figures,
                        f"raw PG {operation}, {label} (pgbench)",
                        raw,
                        cpu_ms_per_op=cpu_per_op(before, cpu_snapshot(pids), figures.operations),
                    )
                )
        report = await stub.CheckLedger(pb.CheckLedgerRequest(), metadata=metadata(), timeout=300)
    return rows, report

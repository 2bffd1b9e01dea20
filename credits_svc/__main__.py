"""python -m credits_svc [serve | migrate | check-ledger | rollup | expire | seal]"""

from __future__ import annotations

import json
import sys

from credits_svc.bootstrap import MIGRATIONS, build
from credits_svc.config import CreditsSettings
from credits_svc.expiry import run_expiry
from credits_svc.hold_service import HoldService
from credits_svc.models import idempotency_records
from credits_svc.rollup import roll_up
from credits_svc.sealing import check_ledger as full_check
from credits_svc.sealing import seal_all
from credits_svc.service import new_transfer_id
from svckit import cli
from svckit.audit_chain import print_seal_runs
from svckit.bootstrap import open_database
from svckit.chain import ChainReport, report_dict
from svckit.idempotency import IdempotencyStore


def _chain(report: ChainReport | None) -> object:
    return None if report is None else report_dict(report)


def check_ledger(settings: CreditsSettings) -> int:
    """Print the ledger check, hash chains included, as JSON; exit status 1 when it fails."""
    engine = open_database(settings, MIGRATIONS, "credits")
    try:
        report = full_check(engine)
    finally:
        engine.dispose()
    print(
        json.dumps(
            {
                "balanced": report.balanced,
                "accounts_checked": report.accounts_checked,
                "transfers_checked": report.transfers_checked,
                "total_balance": report.total_balance,
                "mismatches": [m.__dict__ for m in report.mismatches],
                "unbalanced_transfer_ids": report.unbalanced_transfer_ids,
                "negative_accounts": report.negative_accounts,
                "lot_problems": report.lot_problems,
                "transfer_chain": _chain(report.transfer_chain),
                "audit_chain": _chain(report.audit_chain),
            },
            indent=2,
        )
    )
    return 0 if report.balanced else 1


def rollup(settings: CreditsSettings) -> int:
    """Bring the hourly credit totals up to date now; print what it did as JSON (exit 1 if it had to skip)."""
    engine = open_database(settings, MIGRATIONS, "credits")
    try:
        run = roll_up(engine)
    finally:
        engine.dispose()
    print(json.dumps({"transfers": run.transfers, "last_entry_id": run.last_entry_id, "skipped": run.skipped}))
    return 1 if run.skipped else 0


def expire(settings: CreditsSettings) -> int:
    """Expire lots past their expiry and release holds past their timeout now; print what it did as JSON."""
    engine = open_database(settings, MIGRATIONS, "credits")
    try:
        holds = HoldService(engine, IdempotencyStore(idempotency_records), new_transfer_id)
        run = run_expiry(engine, holds, new_transfer_id)
    finally:
        engine.dispose()
    print(json.dumps(run.__dict__))
    return 0


def seal(settings: CreditsSettings) -> int:
    """Seal the transfers and audit records not sealed yet into their hash chains now; print what it did."""
    engine = open_database(settings, MIGRATIONS, "credits")
    try:
        runs = seal_all(engine)
    finally:
        engine.dispose()
    return print_seal_runs(runs)


if __name__ == "__main__":
    sys.exit(
        cli.main(
            name="credits",
            settings_type=CreditsSettings,
            build=build,
            migrations=MIGRATIONS,
            extra={
                "check-ledger": (
                    "prove balances equal their entries and sum to zero, and verify the hash chains",
                    check_ledger,
                ),
                "seal": ("seal the transfers and audit records not sealed yet into their hash chains", seal),
                "rollup": ("bring the hourly credit totals up to date now", rollup),
                "expire": ("expire lots past their expiry and release holds past their timeout now", expire),
            },
        )
    )

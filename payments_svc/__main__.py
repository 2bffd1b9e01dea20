"""python -m payments_svc [serve | migrate | seal | check-audit-chain | reconcile [options]]"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from payments_svc.bootstrap import MIGRATIONS, build, credits_target_of, stripe_settings
from payments_svc.config import PaymentsSettings
from payments_svc.models import AUDIT_CHAIN
from payments_svc.reconciler import Reconciler, check_window
from svckit import cli
from svckit.audit_chain import audit_chain_commands
from svckit.bootstrap import open_database
from svckit.errors import BillingError
from svckit.stripe_client import make_client

DEFAULT_DAYS = 30


def moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; UTC when it names no offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def reconcile(settings: PaymentsSettings, argv: list[str]) -> int:
    """Print progress to stderr and the report as JSON to stdout; exit 1 with any discrepancy, 2 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m payments_svc reconcile",
        description="Compare Payments with the credit ledger and Stripe for payments created in [since, until).",
    )
    parser.add_argument("--since", type=moment, help=f"start (inclusive); default {DEFAULT_DAYS} days before --until")
    parser.add_argument("--until", type=moment, help="end (exclusive); default now")
    parser.add_argument("--no-stripe", action="store_true", help="compare Payments with the ledger only")
    args = parser.parse_args(argv)
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        parser.error("--since must be before --until")

    def progress(phase: str, rows: int) -> None:
        print(f"reconcile: {phase}: {rows}", file=sys.stderr, flush=True)

    engine = open_database(settings, MIGRATIONS, "payments")
    try:
        check_window(since, until)
        reconciler = Reconciler(engine, credits_target_of(settings), make_client(stripe_settings(settings)))
        report = reconciler.run(since, until, use_stripe=not args.no_stripe, progress=progress)
    except BillingError as error:
        print(f"reconciliation failed: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.findings.discrepancies else 0


if __name__ == "__main__":
    sys.exit(
        cli.main(
            name="payments",
            settings_type=PaymentsSettings,
            build=build,
            migrations=MIGRATIONS,
            with_options={"reconcile": ("compare Payments with the credit ledger and Stripe", reconcile)},
            extra=audit_chain_commands("payments", MIGRATIONS, AUDIT_CHAIN),
        )
    )

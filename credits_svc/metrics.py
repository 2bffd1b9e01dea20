"""The ledger's metrics: credits held by wallets and by each system account, and the last ledger check.

Balances come from the hourly rollup (`ledger_hourly_totals`, credits_svc.rollup) plus the transfers above
its watermark, read in one snapshot at scrape time: a few hundred rows, whatever the ledger's size. The
ledger check proves the whole ledger and costs as much; it runs as a periodic task
(CREDITS_LEDGER_CHECK_SECONDS) and its last result is what a scrape reports, the hash chains'
verification included (per chain: intact or not, and how many rows were not sealed yet).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select

from credits_svc import domain
from credits_svc.models import hourly_totals, ledger_entries, transfers
from credits_svc.repository import LedgerRepository
from credits_svc.sealing import check_ledger
from svckit.db import run_transaction
from svckit.metrics import statement_timeout

log = logging.getLogger(__name__)


def system_balances(amounts: Counter[tuple[str, str]]) -> dict[str, int]:
    """Each system account's balance from the credits moved per (kind, grant source or "")."""
    balances = dict.fromkeys((account.value for account in domain.SystemAccount), 0)
    for (kind, source), amount in amounts.items():
        if kind == domain.TransferKind.SPEND.value:
            balances[domain.SystemAccount.SPEND] += amount
        elif kind == domain.TransferKind.GRANT.value:
            balances[domain.GRANT_ACCOUNTS[domain.GrantSource(source)]] -= amount
        elif source:  # the reversal of a grant takes credits back to the grant's account
            balances[domain.GRANT_ACCOUNTS[domain.GrantSource(source)]] += amount
        else:  # the reversal of a spend gives them back to the wallet
            balances[domain.SystemAccount.SPEND] -= amount
    return balances


def read_amounts(conn: Connection) -> Counter[tuple[str, str]]:
    """Credits moved since the ledger began, per (kind, source): the rollup's rows plus the tail above it."""
    statement_timeout(conn)
    watermark = LedgerRepository(conn).rollup_watermark()
    h, e, t = hourly_totals, ledger_entries, transfers
    amounts: Counter[tuple[str, str]] = Counter()
    for row in conn.execute(select(h.c.kind, h.c.source, func.sum(h.c.amount)).group_by(h.c.kind, h.c.source)):
        amounts[row[0], row[1]] += int(row[2])
    tail = (
        select(t.c.kind, t.c.source, func.sum(t.c.amount))
        .select_from(e.join(t, t.c.id == e.c.transfer_id))
        .where(e.c.id > watermark.last_entry_id, e.c.amount > 0)
        .group_by(t.c.kind, t.c.source)
    )
    for row in conn.execute(tail):
        amounts[row[0], row[1] or ""] += int(row[2])
    return amounts


@dataclass(frozen=True)
class ChainResult:
    intact: bool
    unsealed: int


@dataclass(frozen=True)
class CheckResult:
    balanced: bool
    finished_at: float
    duration_seconds: float
    # Per chain ("transfers", "audit").
    chains: dict[str, ChainResult]


class LedgerCheckRecord:
    """The last periodic ledger check (thread-safe: written by a worker, read by the metrics thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: CheckResult | None = None
        self._last_success_at = 0.0

    def run(self, engine: Engine) -> None:
        started = time.perf_counter()
        report = check_ledger(engine)
        chains = {
            chain.chain: ChainResult(chain.intact, chain.unsealed)
            for chain in (report.transfer_chain, report.audit_chain)
            if chain is not None
        }
        result = CheckResult(report.balanced, time.time(), time.perf_counter() - started, chains)
        for chain in (report.transfer_chain, report.audit_chain):
            if chain is not None and chain.first_break is not None:
                log.error(
                    "hash chain broken: run `python -m credits_svc check-ledger` for the details",
                    extra={"chain": chain.chain, **chain.first_break.__dict__},
                )
        if not report.balanced:
            log.error(
                "ledger check failed: run `python -m credits_svc check-ledger` for the details",
                extra={
                    "mismatches": len(report.mismatches),
                    "unbalanced_transfers": len(report.unbalanced_transfer_ids),
                    "negative_accounts": len(report.negative_accounts),
                    "total_balance": report.total_balance,
                },
            )
        with self._lock:
            self._last = result
            if result.balanced:
                self._last_success_at = result.finished_at

    def last(self) -> tuple[CheckResult | None, float]:
        with self._lock:
            return self._last, self._last_success_at


class LedgerCollector(Collector):
    def __init__(self, engine: Engine, checks: LedgerCheckRecord) -> None:
        self.engine = engine
        self.checks = checks

    def _families(self) -> dict[str, GaugeMetricFamily]:
        families = [
            GaugeMetricFamily("billing_credits_wallets_outstanding", "Credits held by all wallets together."),
            GaugeMetricFamily(
                "billing_credits_system_account_balance",
                "Balance of each system account (negative: credits it has put into wallets).",
                labels=["account"],
            ),
            GaugeMetricFamily(
                "billing_credits_totals_scrape_error", "1 when the ledger totals could not be read at this scrape."
            ),
            GaugeMetricFamily(
                "billing_ledger_check_balanced", "1 when the last periodic ledger check passed, 0 when it failed."
            ),
            GaugeMetricFamily(
                "billing_ledger_check_last_run_timestamp_seconds", "When the last periodic ledger check finished."
            ),
            GaugeMetricFamily(
                "billing_ledger_check_last_success_timestamp_seconds",
                "When a periodic ledger check last passed (0: not since the process started).",
            ),
            GaugeMetricFamily("billing_ledger_check_duration_seconds", "How long the last ledger check took."),
            GaugeMetricFamily(
                "billing_ledger_chain_intact",
                "1 when the hash chain verified at the last periodic ledger check, 0 when a link was broken.",
                labels=["chain"],
            ),
            GaugeMetricFamily(
                "billing_ledger_chain_unsealed_rows",
                "Rows not sealed into the hash chain yet at the last periodic ledger check.",
                labels=["chain"],
            ),
        ]
        return {family.name: family for family in families}

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        out: list[Metric] = []
        try:
            amounts = run_transaction(self.engine, read_amounts, read_only=True, snapshot=True)
        except Exception:
            log.warning("metrics: cannot read the ledger totals", exc_info=True)
            f["billing_credits_totals_scrape_error"].add_metric([], 1)
        else:
            balances = system_balances(amounts)
            f["billing_credits_wallets_outstanding"].add_metric([], -sum(balances.values()))
            for account, balance in sorted(balances.items()):
                f["billing_credits_system_account_balance"].add_metric([account], balance)
            f["billing_credits_totals_scrape_error"].add_metric([], 0)
            out += [f["billing_credits_wallets_outstanding"], f["billing_credits_system_account_balance"]]
        out.append(f["billing_credits_totals_scrape_error"])
        last, last_success_at = self.checks.last()
        if last is not None:
            f["billing_ledger_check_balanced"].add_metric([], 1 if last.balanced else 0)
            f["billing_ledger_check_last_run_timestamp_seconds"].add_metric([], last.finished_at)
            f["billing_ledger_check_duration_seconds"].add_metric([], last.duration_seconds)
            for name, chain in sorted(last.chains.items()):
                f["billing_ledger_chain_intact"].add_metric([name], 1 if chain.intact else 0)
                f["billing_ledger_chain_unsealed_rows"].add_metric([name], chain.unsealed)
            out += [
                f["billing_ledger_check_balanced"],
                f["billing_ledger_check_last_run_timestamp_seconds"],
                f["billing_ledger_check_duration_seconds"],
                f["billing_ledger_chain_intact"],
                f["billing_ledger_chain_unsealed_rows"],
            ]
        f["billing_ledger_check_last_success_timestamp_seconds"].add_metric([], last_success_at)
        out.append(f["billing_ledger_check_last_success_timestamp_seconds"])
        return out

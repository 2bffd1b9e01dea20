"""The plan catalog: what a plan is, the rules a catalog must follow, and reading it from TOML.

The file says what is on sale; Stripe's price ids for it are written by the plan
sync (plan_sync.py) into the `plan_prices` table, never into the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PLANS = Path(__file__).with_name("plans.toml")
PLAN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CURRENCY_PATTERN = re.compile(r"^[a-z]{3}$")
INTERVALS = ("month", "year")
MAX_TRIAL_DAYS = 730  # Stripe's limit
MAX_AMOUNT_MINOR = 99_999_999  # Stripe's limit for unit_amount


class InvalidPlans(ValueError):
    pass


@dataclass(frozen=True)
class PlanPrice:
    currency: str
    interval: str
    amount_minor: int


@dataclass(frozen=True)
class Plan:
    plan_id: str
    family: str
    name: str
    credits_per_period: int
    trial_days: int
    trial_credits: int
    credits_roll_over: bool
    prices: tuple[PlanPrice, ...]

    def price(self, currency: str, interval: str) -> PlanPrice | None:
        return next((p for p in self.prices if p.currency == currency and p.interval == interval), None)

    @property
    def stripe_product_id(self) -> str:
        """The Stripe product of the plan: an id we choose, so the sync finds it again."""
        return f"billing_plan_{self.plan_id}"

    def lookup_key(self, price: PlanPrice) -> str:
        """The price's Stripe lookup key: one per plan, currency and interval; it moves to a changed price."""
        return f"billing_plan_{self.plan_id}_{price.currency}_{price.interval}"


@dataclass(frozen=True)
class PlanCatalog:
    plans: tuple[Plan, ...]
    default_currency: str

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.plan_id == plan_id), None)


def validate(plans: Sequence[Plan], default_currency: str) -> list[str]:
    """Every problem of a catalog, one line each; empty when it is valid."""
    problems: list[str] = []
    if not CURRENCY_PATTERN.match(default_currency):
        problems.append(f"default_currency {default_currency!r} is not a lower-case ISO 4217 code")
    if not plans:
        problems.append("the catalog has no plans")
    seen: set[str] = set()
    for plan in plans:
        where = f"plan {plan.plan_id!r}"
        if not PLAN_ID_PATTERN.match(plan.plan_id):
            problems.append(f"{where}: id must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit")
        if plan.plan_id in seen:
            problems.append(f"{where}: id used twice")
        seen.add(plan.plan_id)
        if not PLAN_ID_PATTERN.match(plan.family):
            problems.append(f"{where}: family must follow the id rule")
        if not plan.name.strip() or len(plan.name) > 120:
            problems.append(f"{where}: name must be 1 to 120 characters")
        if plan.credits_per_period <= 0:
            problems.append(f"{where}: credits_per_period must be positive")
        if not 0 <= plan.trial_days <= MAX_TRIAL_DAYS:
            problems.append(f"{where}: trial_days must be 0 to {MAX_TRIAL_DAYS}")
        if plan.trial_credits < 0 or (plan.trial_credits and not plan.trial_days):
            problems.append(f"{where}: trial_credits must be 0, or positive with trial_days")
        problems.extend(_price_problems(where, plan.prices, default_currency))
    return problems


def _price_problems(where: str, prices: Iterable[PlanPrice], default_currency: str) -> list[str]:
    problems: list[str] = []
    slots: set[tuple[str, str]] = set()
    for price in prices:
        slot = (price.currency, price.interval)
        if not CURRENCY_PATTERN.match(price.currency):
            problems.append(f"{where}: currency {price.currency!r} is not a lower-case ISO 4217 code")
        if price.interval not in INTERVALS:
            problems.append(f"{where}: interval {price.interval!r} must be one of {', '.join(INTERVALS)}")
        if not 0 < price.amount_minor <= MAX_AMOUNT_MINOR:
            problems.append(f"{where}: amount for {slot} must be 1 to {MAX_AMOUNT_MINOR}")
        if slot in slots:
            problems.append(f"{where}: two prices for {slot}")
        slots.add(slot)
    if (default_currency, "month") not in slots:
        problems.append(f"{where}: needs a monthly price in the default currency {default_currency}")
    return problems


def load_plans(path: Path) -> PlanCatalog:
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidPlans(f"cannot read the plan catalog {path}: {error}") from error
    try:
        plans = [
            Plan(
                plan_id=str(entry["id"]),
                family=str(entry.get("family", entry["id"])),
                name=str(entry["name"]),
                credits_per_period=int(entry["credits_per_period"]),
                trial_days=int(entry.get("trial_days", 0)),
                trial_credits=int(entry.get("trial_credits", 0)),
                credits_roll_over=_boolean(entry.get("credits_roll_over", False)),
                prices=tuple(
                    PlanPrice(currency=str(p["currency"]), interval=str(p["interval"]), amount_minor=int(p["amount"]))
                    for p in entry["prices"]
                ),
            )
            for entry in document.get("plans", [])
        ]
        default_currency = str(document["default_currency"])
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidPlans(
            f"plan catalog {path}: every plan needs id, name, credits_per_period and prices "
            f"(currency, interval, amount) ({error})"
        ) from error
    problems = validate(plans, default_currency)
    if problems:
        raise InvalidPlans(f"plan catalog {path}:\n  " + "\n  ".join(problems))
    return PlanCatalog(plans=tuple(plans), default_currency=default_currency)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"credits_roll_over must be true or false, not {value!r}")
    return value

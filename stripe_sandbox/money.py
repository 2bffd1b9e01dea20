"""Amounts in minor units, shown to people (pages, messages). Integer arithmetic only."""

from __future__ import annotations

# ISO 4217 currencies Stripe treats as zero-decimal: the amount is in whole units.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "chf": "CHF "}


def format_amount(amount: int, currency: str) -> str:
    """1099, "usd" -> "$10.99"; 500, "jpy" -> "¥500"; unknown currencies by code."""
    currency = currency.lower()
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    number = f"{amount:,}" if currency in ZERO_DECIMAL else f"{amount // 100:,}.{amount % 100:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"

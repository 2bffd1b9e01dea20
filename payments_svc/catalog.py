"""Reading the credit package catalog from its TOML file; refused at start-up when invalid."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from payments_svc.domain import Catalog, CreditPackage, validate_catalog

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")


class InvalidCatalog(ValueError):
    pass


def load_catalog(path: Path) -> Catalog:
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidCatalog(f"cannot read the catalog {path}: {error}") from error
    try:
        packages = [
            CreditPackage(
                package_id=str(entry["id"]),
                name=str(entry["name"]),
                credits=int(entry["credits"]),
                prices={str(currency): int(amount) for currency, amount in dict(entry["prices"]).items()},
            )
            for entry in document.get("packages", [])
        ]
        default_currency = str(document["default_currency"])
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidCatalog(f"catalog {path}: every package needs id, name, credits and prices ({error})") from error
    problems = validate_catalog(packages, default_currency)
    if problems:
        raise InvalidCatalog(f"catalog {path}:\n  " + "\n  ".join(problems))
    return Catalog(packages=packages, default_currency=default_currency)

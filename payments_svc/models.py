"""The Payments database. So far only the idempotency records every service keeps."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from svckit.db import NAMING_CONVENTION
from svckit.idempotency import idempotency_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata
idempotency_records = idempotency_table(metadata)

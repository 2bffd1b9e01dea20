"""python -m payments_svc [serve | migrate | seal | check-audit-chain]"""

from __future__ import annotations

import sys

from payments_svc.bootstrap import MIGRATIONS, build
from payments_svc.config import PaymentsSettings
from payments_svc.models import AUDIT_CHAIN
from svckit import cli
from svckit.audit_chain import audit_chain_commands

if __name__ == "__main__":
    sys.exit(
        cli.main(
            name="payments",
            settings_type=PaymentsSettings,
            build=build,
            migrations=MIGRATIONS,
            extra=audit_chain_commands("payments", MIGRATIONS, AUDIT_CHAIN),
        )
    )

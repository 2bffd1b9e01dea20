"""python -m payments_svc [serve | migrate]"""

from __future__ import annotations

import sys

from payments_svc.bootstrap import MIGRATIONS, build
from payments_svc.config import PaymentsSettings
from svckit import cli

if __name__ == "__main__":
    sys.exit(cli.main(name="payments", settings_type=PaymentsSettings, build=build, migrations=MIGRATIONS))

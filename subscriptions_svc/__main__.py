"""python -m subscriptions_svc [serve | migrate]"""

from __future__ import annotations

import sys

from subscriptions_svc.bootstrap import MIGRATIONS, build
from subscriptions_svc.config import SubscriptionsSettings
from svckit import cli

if __name__ == "__main__":
    sys.exit(cli.main(name="subscriptions", settings_type=SubscriptionsSettings, build=build, migrations=MIGRATIONS))

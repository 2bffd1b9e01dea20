from alembic import context

from payments_svc.models import metadata
from svckit.migrations import run_env

run_env(context, metadata)

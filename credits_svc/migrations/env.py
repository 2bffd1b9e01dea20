from alembic import context

from credits_svc.models import metadata
from svckit.migrations import run_env

run_env(context, metadata)

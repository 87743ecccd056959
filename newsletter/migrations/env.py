"""Alembic environment: runs against the engine handed in by ``newsletter.database``."""

from alembic import context

import newsletter.models  # noqa: F401 - registers tables on the shared metadata
import newsletter.staff.models  # noqa: F401
import subscribers.models  # noqa: F401
from subscribers.db import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI use: build from settings
    from newsletter.config import get_settings
    from newsletter.database import make_engine

    engine = make_engine(get_settings().database_url or "")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()

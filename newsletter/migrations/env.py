"""Alembic environment: runs against the engine handed in by ``newsletter.database``."""

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning

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
    with context.begin_transaction(), warnings.catch_warnings():
        # SQLite rebuilds a table to alter it, reflecting the tables it refers to; the expression
        # indexes of ``contacts`` cannot be reflected and SQLAlchemy would say so on the stderr of every
        # command that creates or upgrades a database (``contacts`` itself is never rebuilt so).
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
        context.run_migrations()

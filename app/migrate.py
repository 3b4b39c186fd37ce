"""Run the Alembic migrations from code (CLI, tests, the run command)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime

from app.db import UTCDateTime

ROOT = Path(__file__).resolve().parents[1]


def alembic_config(connection=None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection=None) -> None:
    command.upgrade(alembic_config(connection), "head")


def render_item(type_, obj, autogen_context):
    # Migrations store plain timezone-aware timestamps; UTC handling lives in the model type.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type):
    if isinstance(metadata_type, UTCDateTime):
        return not isinstance(inspected_type, DateTime)
    return None

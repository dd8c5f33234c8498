"""Alembic environment: the target metadata is derived from the layer declarations."""

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, text

from geo_service.layers import LayerRegistry
from geo_service.settings import Settings
from geo_service.tables import build_metadata, migration_filter

config = context.config
settings: Settings = config.attributes.get("settings") or Settings()
target_metadata = build_metadata(LayerRegistry.from_dir(settings.layers_dir))


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=migration_filter(target_metadata),
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()

"""Alembic environment: the target metadata is derived from the layer declarations."""

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, text

from geo_service.layers import LayerRegistry
from geo_service.settings import Settings
from geo_service.tables import build_metadata

config = context.config
settings: Settings = config.attributes.get("settings") or Settings()
target_metadata = build_metadata(LayerRegistry.from_dir(settings.layers_dir))


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS owns spatial_ref_sys and the tiger/topology schemas: never touch them.
    if type_ == "table" and reflected and compare_to is None:
        return name in target_metadata.tables
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()

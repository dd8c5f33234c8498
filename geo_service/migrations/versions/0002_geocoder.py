"""geocoder: unaccent + pg_trgm, the BAN addresses table and the geocoder's search index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Hand-written. ``immutable_unaccent`` wraps ``unaccent`` (only STABLE, because its dictionary could change)
so that it may be used in indexes and generated columns; ``search_normalize`` is the one normalisation
the geocoder applies to both the indexed text and the query (no accents, lower case, punctuation as
spaces). Both name their schema explicitly so they do not depend on the caller's ``search_path``.

``addresses`` is where the BAN importer writes; ``geocode_names`` / ``geocode_numbers`` are rebuilt from
``premises``, ``addresses`` and ``communes`` by ``geo_service.services.geocoder.refresh_search_index``.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _point() -> Geometry:
    return Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False,
                    from_text='ST_GeomFromEWKT', name='geometry', nullable=False)


def _functions() -> None:
    bind = op.get_bind()
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    unaccent_schema = bind.execute(sa.text(
        "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'unaccent'")).scalar_one()
    here = bind.execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {here}.immutable_unaccent(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT {unaccent_schema}.unaccent('{unaccent_schema}.unaccent'::regdictionary, $1) $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION {here}.search_normalize(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT btrim(regexp_replace(lower({here}.immutable_unaccent($1)), '[^a-z0-9]+', ' ', 'g')) $$""")
    op.execute(f"COMMENT ON FUNCTION {here}.search_normalize(text) IS "
               "'Texte cherché par le géocodeur : sans accents, en minuscules, ponctuation remplacée par des espaces'")


def upgrade() -> None:
    _functions()
    op.create_geospatial_table('addresses',
    sa.Column('id', sa.Text(), nullable=False, comment="Clé d'interopérabilité BAN (cle_interop)"),
    sa.Column('numero', sa.Integer(), nullable=True, comment='Numéro dans la voie'),
    sa.Column('rep', sa.Text(), nullable=True, comment='Indice de répétition (bis, ter, a…)'),
    sa.Column('nom_voie', sa.Text(), nullable=False, comment='Voie ou lieu-dit'),
    sa.Column('code_postal', sa.Text(), nullable=True, comment='Code postal'),
    sa.Column('code_insee', sa.Text(), nullable=False, comment='Code INSEE de la commune'),
    sa.Column('nom_commune', sa.Text(), nullable=True, comment='Commune'),
    sa.Column('geom', _point(), nullable=False),
    sa.Column('source', sa.Text(), server_default=sa.text("'BAN'"), nullable=False, comment="Source de l'adresse"),
    sa.Column('source_date', sa.Date(), nullable=True, comment='Date de la source'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addresses'))
    )
    op.create_geospatial_index('idx_addresses_geom', 'addresses', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_addresses_code_insee', 'addresses', ['code_insee'], unique=False)
    op.create_table_comment('addresses', "Adresses de la Base Adresse Nationale, écrites par l'import BAN et lues par le géocodeur")

    op.create_geospatial_table('geocode_names',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='commune ou voie (voie ou lieu-dit)'),
    sa.Column('name', sa.Text(), nullable=False, comment='Nom affiché'),
    sa.Column('code_insee', sa.Text(), nullable=False),
    sa.Column('code_postal', sa.Text(), nullable=True),
    sa.Column('nom_commune', sa.Text(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False, comment='Texte normalisé cherché (search_normalize)'),
    sa.Column('search_vector', postgresql.TSVECTOR(), nullable=False, comment='Mots de search_text (recherche par préfixe)'),
    sa.Column('weight', sa.Float(), server_default=sa.text('0'), nullable=False, comment="Départage des résultats égaux (population, nombre d'adresses)"),
    sa.Column('geom', _point(), nullable=False),
    sa.CheckConstraint("kind IN ('commune', 'voie')", name=op.f('ck_geocode_names_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_geocode_names'))
    )
    op.create_geospatial_index('idx_geocode_names_geom', 'geocode_names', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_geocode_names_search_vector', 'geocode_names', ['search_vector'], unique=False, postgresql_using='gin')
    op.create_index('ix_geocode_names_search_text', 'geocode_names', ['search_text'], unique=False, postgresql_using='gin', postgresql_ops={'search_text': 'gin_trgm_ops'})
    op.create_table_comment('geocode_names', 'Géocodeur : communes et voies cherchables (reconstruit par refresh_search_index)')

    op.create_geospatial_table('geocode_numbers',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name_id', sa.BigInteger(), nullable=False, comment='Voie (geocode_names.id)'),
    sa.Column('numero', sa.Integer(), nullable=False),
    sa.Column('rep', sa.Text(), nullable=True, comment='Indice de répétition, en minuscules'),
    sa.Column('ref', sa.Text(), nullable=False, comment='Identifiant dans la source (imb_id, clé BAN)'),
    sa.Column('source', sa.Text(), nullable=False, comment='premises ou addresses'),
    sa.Column('geom', _point(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_geocode_numbers'))
    )
    op.create_geospatial_index('idx_geocode_numbers_geom', 'geocode_numbers', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('ix_geocode_numbers_name_id', 'geocode_numbers', ['name_id', 'numero'], unique=False)
    op.create_table_comment('geocode_numbers', 'Géocodeur : numéros des voies (reconstruit par refresh_search_index)')


def downgrade() -> None:
    op.drop_index('ix_geocode_numbers_name_id', table_name='geocode_numbers')
    op.drop_geospatial_index('idx_geocode_numbers_geom', table_name='geocode_numbers', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('geocode_numbers')
    op.drop_index('ix_geocode_names_search_text', table_name='geocode_names')
    op.drop_index('ix_geocode_names_search_vector', table_name='geocode_names')
    op.drop_geospatial_index('idx_geocode_names_geom', table_name='geocode_names', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('geocode_names')
    op.drop_index('ix_addresses_code_insee', table_name='addresses')
    op.drop_geospatial_index('idx_addresses_geom', table_name='addresses', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('addresses')
    op.execute("DROP FUNCTION IF EXISTS search_normalize(text)")
    op.execute("DROP FUNCTION IF EXISTS immutable_unaccent(text)")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
    op.execute("DROP EXTENSION IF EXISTS unaccent")

"""layer changes: one change counter per layer table, bumped by a statement trigger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The function body as of this revision; geo_service.db.migrate() then installs it and one trigger per
# layer table (services/publish/layer_state.py), so a layer added later gets its trigger too.
FUNCTION = """
CREATE OR REPLACE FUNCTION geo_service_layer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO layer_changes (layer_id, version, changed_at) VALUES (TG_TABLE_NAME, 1, clock_timestamp())
    ON CONFLICT (layer_id) DO UPDATE
        SET version = layer_changes.version + 1, changed_at = clock_timestamp();
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table('layer_changes',
    sa.Column('layer_id', sa.Text(), nullable=False),
    sa.Column('version', sa.BigInteger(), server_default=sa.text('1'), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('layer_id', name=op.f('pk_layer_changes')),
    comment='Compteur de modifications par couche (ETag, Last-Modified, caches)'
    )
    op.execute(FUNCTION)


def downgrade() -> None:
    # Triggers depend on the function: CASCADE removes them from every layer table.
    op.execute("DROP FUNCTION IF EXISTS geo_service_layer_changed() CASCADE")
    op.drop_table('layer_changes')

"""tokens: a per-token exception to the If-Match rule, for clients that never send it (QGIS)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:00:00

QGIS (3.x) edits through OGC API – Features Part 4 but sends no ``If-Match``: with the header required, its
changes and deletions were refused (428). A token created with ``geo-service user token --qgis`` lets that
client change features without it (the last writer wins, as in QGIS's own PostGIS editing); rights,
checks, proposals and history apply unchanged.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('account_tokens', sa.Column(
        'if_match_optional', sa.Boolean(), server_default=sa.text('false'), nullable=False,
        comment='Client sans If-Match (QGIS) : modifications acceptées sans If-Match, la dernière gagne'))


def downgrade() -> None:
    op.drop_column('account_tokens', 'if_match_optional')

"""An assessment's response is kept as the exact JSON text it was sent as (was JSON / JSONB).

PostgreSQL parsed every 10 KB response into JSONB on insert, about half the cost of storing a
match, and gave it back with its keys reordered; nothing queries inside a response. As text it
is stored without parsing and read back byte for byte; on PostgreSQL it is compressed with lz4.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:20:00
"""

from __future__ import annotations

from alembic import op

import models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _retype_sqlite(new_type: str) -> None:
    # SQLite cannot change a column's type in place, and batch mode would copy the table and drop
    # the old one, which with foreign keys on cascades into assessment_outcomes. A new column,
    # filled, then swapped in (SQLite >= 3.35), leaves the table and its references alone.
    op.execute(f"ALTER TABLE assessments ADD COLUMN response_new {new_type} NOT NULL DEFAULT ''")
    op.execute("UPDATE assessments SET response_new = response")
    op.execute("ALTER TABLE assessments DROP COLUMN response")
    op.execute("ALTER TABLE assessments RENAME COLUMN response_new TO response")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _retype_sqlite("TEXT")
        return
    op.alter_column(
        "assessments",
        "response",
        type_=models.base.JSONText(),
        existing_type=models.base.JSONDocument(),
        existing_nullable=False,
        postgresql_using="response::text",
    )
    # lz4 compresses a 10 KB response about as well for a fraction of the CPU of the default pglz,
    # which was a large share of an insert's cost (PostgreSQL 14+, when built with lz4).
    op.execute(
        """
        DO $$
        BEGIN
            ALTER TABLE assessments ALTER COLUMN response SET COMPRESSION lz4;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'lz4 is not available here; responses keep the default compression';
        END $$;
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _retype_sqlite("JSON")
        return
    op.execute("ALTER TABLE assessments ALTER COLUMN response SET COMPRESSION default")
    op.alter_column(
        "assessments",
        "response",
        type_=models.base.JSONDocument(),
        existing_type=models.base.JSONText(),
        existing_nullable=False,
        postgresql_using="response::jsonb",
    )

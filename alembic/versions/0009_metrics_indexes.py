"""`ix_tasks_succeeded_type` and `ix_tasks_errors`: `/metrics` counts tasks and error histories without a table scan.

`/metrics` counted tasks with `GROUP BY type, state` over the whole table: every task row read (80–418 ms at
100,000 jobs). Each state is now counted from its own partial index; this one covers the succeeded tasks, nine in
ten of the table, so their count per type is read from the index alone. A task enters it once, when it succeeds.
The error histories were walked by a scan of every task for the few with an entry (53 ms of JSON filtering);
`ix_tasks_errors` lists those few (16 ms). A task enters it at its first error and stays.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    where = sa.text("state = 'succeeded'")
    op.create_index("ix_tasks_succeeded_type", "tasks", ["type", "state"], sqlite_where=where, postgresql_where=where)
    # PostgreSQL compares JSON as text only through a cast; the metrics query spells the same predicate.
    op.create_index("ix_tasks_errors", "tasks", ["id"], sqlite_where=sa.text("errors <> '[]'"),
                    postgresql_where=sa.text("errors::text <> '[]'"))  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_tasks_errors", table_name="tasks")
    op.drop_index("ix_tasks_succeeded_type", table_name="tasks")

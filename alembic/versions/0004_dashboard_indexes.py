"""Indexes for status and the dashboard at 100,000 jobs: tasks by finish time, and the failed/cancelled ones.

`finished_at` serves the throughput graph, the ETA window and the start of the current work; the two partial
indexes keep "which jobs failed / were cancelled" to the few rows in those states.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_finished_at", "tasks", ["finished_at"])
    for state in ("failed", "cancelled"):
        where = sa.text(f"state = '{state}'")
        op.create_index(f"ix_tasks_{state}", "tasks", ["job_id"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in ("ix_tasks_cancelled", "ix_tasks_failed", "ix_tasks_finished_at"):
        op.drop_index(name, table_name="tasks")

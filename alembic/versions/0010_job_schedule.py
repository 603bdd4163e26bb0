"""Scheduling per job (issue 27): `jobs.not_before`, `job_deps` and the per-machine `task_costs` history.

`jobs.not_before` keeps a job's `--at` / `--not-before` time so a retry of a job that never ran keeps it (its first
task's run_after is what the claim reads). `job_deps` holds `--after` edges; the claim skips a task whose job has a
dependency with a task not yet succeeded, through the primary key (job_id, after_job_id). `task_costs` is the
history the memory check and the ETA predict a local task's cost from.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("not_before", sa.Float(), nullable=True))
    op.create_table(
        "job_deps",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", name="fk_job_deps_job_id_jobs", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("after_job_id", sa.Integer(), sa.ForeignKey("jobs.id", name="fk_job_deps_after_job_id_jobs"),
                  nullable=False),
        sa.PrimaryKeyConstraint("job_id", "after_job_id", name="pk_job_deps"),
    )  # fmt: skip
    op.create_index("ix_job_deps_after_job_id", "job_deps", ["after_job_id"])
    op.create_table(
        "task_costs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("seconds_audio", sa.Float(), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("peak_rss_mb", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_costs"),
    )
    op.create_index("ix_task_costs_host_type_model", "task_costs", ["host", "type", "model", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_task_costs_host_type_model", table_name="task_costs")
    op.drop_table("task_costs")
    op.drop_index("ix_job_deps_after_job_id", table_name="job_deps")
    op.drop_table("job_deps")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("not_before")

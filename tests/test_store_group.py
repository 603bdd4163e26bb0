"""Store: claims and has_work limited to one job group; reopening a job into another group."""

from __future__ import annotations

from traxd.queue.store import Store
from traxd.types import NewJob, NewTask, TaskState, TaskType


def add(store: Store, group: str, key: str) -> int:
    job, _tasks, _ = store.create_job(NewJob(f"/x/{key}", key, None, group), [NewTask(TaskType.TRANSCRIBE, {}, dedupe_key=key)])
    return job.id


def test_claim_and_has_work_see_only_the_group(store: Store) -> None:
    add(store, "daemon", "a")
    add(store, "batch:1", "b")
    assert store.has_work(None, "batch:1") and store.has_work(None, "daemon") and not store.has_work(None, "other")
    claimed = store.claim("me", 10, 30, None, group="batch:1")
    assert [store.get_job(t.job_id).group for t in claimed] == ["batch:1"]
    assert store.has_work(None, "batch:1")  # still running
    store.complete(claimed[0].lease, {})
    assert not store.has_work(None, "batch:1") and store.has_work(None, "daemon")
    assert len(store.claim("me", 10, 30)) == 1  # no group: everything


def test_reopen_job_moves_it_and_requeues_failures(store: Store) -> None:
    job_id = add(store, "daemon", "a")
    task = store.claim("me", 1, 30)[0]
    store.cancel(task.id)
    assert store.reopen_job(job_id, "batch:1") == 1
    assert store.get_job(job_id).group == "batch:1"
    assert store.get(task.id).state is TaskState.QUEUED and store.counts("batch:1")["queued"] == 1


def test_create_jobs_in_bulk_matches_create_job(store: Store) -> None:
    old_job = add(store, "daemon", "k0")
    items = [(NewJob(f"/x/{k}", k, "/out", "g"), NewTask(TaskType.PREPROCESS, {"n": k}, dedupe_key=k))
             for k in ("k0", "k1", "k2", "k1")]  # fmt: skip
    out = store.create_jobs(items)
    assert [created for _, _, created in out] == [False, True, True, False]
    assert out[0][0].id == old_job and out[0][0].group == "daemon"
    assert out[3][1].id == out[1][1].id and out[3][0].id == out[1][0].id  # same key twice: one job
    assert [t.job_id for _, t, _ in out[1:3]] == [j.id for j, _, _ in out[1:3]]
    assert store.get_job(out[2][0].id).group == "g" and store.counts("g")["queued"] == 2
    assert store.create_jobs([]) == []


def test_reopening_a_job_with_new_options_gives_its_tasks_those_options_and_without_keeps_the_old(store: Store) -> None:
    job, _, _ = store.create_job(NewJob("/x/a", "a", None, "daemon", {"language": "en"}),
                                 [NewTask(TaskType.TRANSCRIBE, {}, dedupe_key="a")])  # fmt: skip
    store.reopen_job(job.id, "batch:1", {"language": "de"})
    assert store.get_job(job.id).options == {"language": "de"}
    store.reopen_job(job.id, "batch:2")
    assert store.get_job(job.id).options == {"language": "de"} and store.get_job(job.id).group == "batch:2"

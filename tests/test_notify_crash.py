"""A real daemon is killed with SIGKILL after its jobs ended but before their webhooks got through, then restarted:
every job's event still arrives, signed right, with one event id per job (a duplicate by id is counted)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon_helpers import Daemon, home_env, open_home_store, traxctl, wait_until
from tests.fakes.receiver import Receiver
from traxd.types import TaskState, TaskType

SECRET = "whsec_crash_0123456789"
FILES = 5


def spawn(daemons: list[Daemon], home: Path, url: str) -> Daemon:
    env = home_env(home, "notifying", TRAX_WEBHOOK_URL=url, TRAX_WEBHOOK_SECRET=SECRET, TRAX_WEBHOOK_ALLOW_PRIVATE="1")
    d = Daemon(home, env)
    daemons.append(d)
    return d.start()


def test_kill9_between_job_end_and_delivery_loses_no_event(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    # Three 500s (Retry-After: 1) per event: no event can be accepted within two seconds of its first attempt.
    with Receiver(SECRET, fail_first=3, retry_after="1") as receiver:
        first = spawn(daemons, home, receiver.url).wait_ready()
        for i in range(FILES):
            (inbox / f"talk-{i}.mp3").write_bytes(f"talk {i}".encode())
        wait_until(lambda: len(receiver.ids()) >= FILES, what="every job's first delivery attempt")
        first.kill9()
        pending_at_kill = FILES - len(receiver.accepted_per_id())
        assert pending_at_kill >= 1, "the kill came after every delivery: it tested nothing"
        store = open_home_store(home)
        try:
            waiting = [t for t in store.list_tasks(limit=100) if t.type is TaskType.NOTIFY
                       and t.state is not TaskState.SUCCEEDED]  # fmt: skip
            assert len(waiting) >= pending_at_kill  # the events outlived the daemon in the database
        finally:
            store.engine.dispose()
        spawn(daemons, home, receiver.url).wait_ready()
        wait_until(lambda: len(receiver.accepted_per_id()) >= FILES, what="every event accepted after the restart")
        deliveries = list(receiver.deliveries)
        per_id = receiver.accepted_per_id()
    assert all(d.signed_right for d in deliveries)
    ids_per_job: dict[int, set[str]] = {}
    for d in deliveries:
        ids_per_job.setdefault(d.event["data"]["job_id"], set()).add(d.event["id"])
    assert len(ids_per_job) == FILES and all(len(ids) == 1 for ids in ids_per_job.values())
    assert {d.event["type"] for d in deliveries} == {"job.succeeded"}
    duplicates = sum(n - 1 for n in per_id.values())
    # A duplicate is only possible for a delivery in flight at the kill (the receiver answered, the daemon died).
    assert duplicates <= pending_at_kill, per_id
    # The deliveries left the jobs as they were: every stage succeeded, nothing counts as a failed or open input
    # (status counts the current busy period, which may have begun after the first jobs ended).
    status = json.loads(traxctl(home, "status", "--json").stdout)
    assert (status["failed"], status["queued"], status["running"]) == (0, 0, 0)
    store = open_home_store(home)
    try:
        stages = [t for t in store.list_tasks(limit=100) if t.type is not TaskType.NOTIFY]
    finally:
        store.engine.dispose()
    assert len(stages) == FILES and all(t.state is TaskState.SUCCEEDED for t in stages)

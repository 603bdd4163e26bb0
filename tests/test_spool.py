"""The spool of paid results, in one process: the normal path never touches it, a start-up replays it fenced, and
a file that cannot be applied is set aside with a one-line reason. (Real outages: tests/test_db_outage.py.)"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from traxd.clock import FakeClock
from traxd.daemon.paid import PaidResults
from traxd.daemon.pool import Pool, PoolConfig
from traxd.daemon.spool import ASIDE, Spool
from traxd.handlers.common import save_paid
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.queue.transitions import Offer, OfferRow, decide_rescue, offer_verdict
from traxd.types import PAID_KEY, Lease, NewJob, NewTask, TaskType

T = TaskType.TRANSCRIBE
MINE = Lease(7, "host:1:1.00", 2)


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (None, Offer.GONE),  # deleted
        (OfferRow("enhance", "running", MINE.owner, 2, None), Offer.GONE),  # the id is another task now
        (OfferRow("transcribe", "running", MINE.owner, 2, {"done": 1}), Offer.OURS),
        (OfferRow("transcribe", "queued", MINE.owner, 2, {PAID_KEY: 2}), Offer.OFFERED),  # rescued, not re-run yet
        (OfferRow("transcribe", "running", "other:2:2.00", 3, {PAID_KEY: 2}), Offer.OFFERED),  # re-run, not paid yet
        (OfferRow("transcribe", "running", "other:2:2.00", 3, None), Offer.OFFERED),
        (OfferRow("transcribe", "running", "other:2:2.00", 3, {PAID_KEY: 3}), Offer.DROPPED),  # the re-run paid
        (OfferRow("transcribe", "queued", "other:2:2.00", 3, {PAID_KEY: 3}), Offer.DROPPED),
        (OfferRow("transcribe", "succeeded", MINE.owner, 2, {"text": "x"}), Offer.DROPPED),  # finished without it
    ],
)
def test_offer_verdict_fences_a_spooled_result(row: OfferRow | None, verdict: str) -> None:
    assert offer_verdict(MINE, "transcribe", row) == verdict


def paying(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    done = dict(ctx.previous.get("done") or {})
    for i in range(2):
        done[str(i)] = "paid"
        save_paid(ctx, {"done": done})
    return {"done": done}


def test_the_normal_path_writes_no_spool(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_args: Any) -> None:
        raise AssertionError("the spool was written on the normal path")

    monkeypatch.setattr(Spool, "write", never)
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(3)])
    spool = tmp_path / "spool"
    stats = Pool(store, Registry({T: paying}), PoolConfig(slots=2, spool_dir=spool)).run(drain=True)
    assert stats.succeeded == 3 and not spool.exists()


def paid_results(store: Store, folder: Path) -> PaidResults:
    return PaidResults(store, Spool(folder), 1.0, random.Random(0))


def test_replay_commits_a_result_whose_lease_is_still_held(store: Store, tmp_path: Path) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("dead:1:1.00", 1, 30)
    spool = Spool(tmp_path / "spool")
    path = spool.write(run.lease, T.value, {"done": {"0": "paid"}})
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    results = paid_results(store, spool.folder)
    results.replay()
    assert results.replayed and not path.exists()
    assert store.get(run.id).result == {"done": {"0": "paid"}, PAID_KEY: 1}  # type: ignore[union-attr]


def test_replay_offers_to_a_rerun_that_has_not_paid_and_drops_for_one_that_has(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    store.enqueue_many([NewTask(T, {"i": 1}), NewTask(T, {"i": 2})])
    first = store.claim("dead:1:1.00", 2, 30)
    spool = Spool(tmp_path / "spool")
    for run in first:
        spool.write(run.lease, T.value, {"done": {"0": "old"}})
        assert store.rescue(run.lease, decide_rescue(run, clock.now(), "worker died"))
    unpaid, paid = store.claim("next:2:2.00", 2, 30)
    assert store.checkpoint(paid.lease, {"done": {"0": "new", "1": "new"}}, paid=True)
    paid_results(store, spool.folder).replay()
    assert store.get(unpaid.id).result == {"done": {"0": "old"}, PAID_KEY: 1}  # type: ignore[union-attr]
    assert store.get(paid.id).result == {"done": {"0": "new", "1": "new"}, PAID_KEY: 2}  # type: ignore[union-attr]
    assert not spool.files()


def test_a_spool_that_cannot_be_applied_is_set_aside_with_a_one_line_reason(store: Store, tmp_path: Path) -> None:
    job, (task,), _ = store.create_job(NewJob("/in/a.mp3", "a", None, "daemon", {}), [NewTask(T, {})])
    (run,) = store.claim("dead:1:1.00", 1, 30)
    spool = Spool(tmp_path / "spool")
    deleted = spool.write(run.lease, T.value, {"done": {"0": "paid"}})
    store.cancel(task.id)
    assert store.delete_job(job.id)
    other = spool.folder / "task-99-attempt-1.json"
    other.write_text(json.dumps({"format": 0, "task_id": 99}))
    garbled = spool.folder / "task-98-attempt-1.json"
    garbled.write_text("{not json")
    paid_results(store, spool.folder).replay()
    assert not spool.files(), "an unappliable spool stayed where it would be retried"
    reasons = {p.stem: p.read_text() for p in (spool.folder / ASIDE).glob("*.reason")}
    assert reasons.keys() == {deleted.stem, other.stem, garbled.stem}
    assert all(r.count("\n") == 1 for r in reasons.values())
    assert "no longer in the queue" in reasons[deleted.stem]
    assert "spool format 0" in reasons[other.stem] and "unreadable" in reasons[garbled.stem]


def test_nothing_is_claimed_while_a_paid_result_waits_for_the_database(store: Store) -> None:
    store.enqueue(NewTask(T, {}))
    pool = Pool(store, Registry({T: paying}), PoolConfig(slots=2))
    assert pool._claim_plan([])[1] == 2
    with pool.paid._held():  # what commit() holds while it retries
        assert pool._claim_plan([])[1] == 0
        assert pool.stats.paused_reason == "1 paid result(s) wait for the database to take them"
    assert pool._claim_plan([])[1] == 2


def test_a_spool_the_database_refuses_for_good_is_set_aside(pg_url: str, tmp_path: Path) -> None:
    from sqlalchemy import text

    from traxd.db.engine import open_engine
    from traxd.db.migrate import upgrade

    engine = open_engine(pg_url)
    upgrade(engine)
    store = Store(engine)
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("dead:1:1.00", 1, 30)
    spool = Spool(tmp_path / "spool")
    path = spool.write(run.lease, T.value, {"done": {"0": "paid"}})
    with engine.begin() as conn:  # a schema this spool no longer fits (an error that is not an outage)
        conn.execute(text("ALTER TABLE tasks RENAME COLUMN result TO result_before"))
    try:
        paid_results(store, spool.folder).replay()
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE tasks RENAME COLUMN result_before TO result"))
        engine.dispose()
    reason = (spool.folder / ASIDE / path.name).with_suffix(".reason").read_text()
    assert reason.startswith("the database refused it:") and reason.count("\n") == 1
    assert not spool.files()
